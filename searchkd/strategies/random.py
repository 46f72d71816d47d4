"""Random search: uniform samples of the space, without replacement.

The baseline every NAS paper compares against; Li & Talwalkar, "Random Search and
Reproducibility for Neural Architecture Search" (UAI 2019) show it is a strong one.
Departure: samples already asked are redrawn (up to ``retries`` times, then drawn from the
archs not yet asked when the space is small enough to list), so a budget is spent on
distinct architectures; ``ask`` returns fewer than asked once the space is exhausted.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from searchkd.registry import STRATEGIES
from searchkd.strategies.base import Score, Strategy, fitness_key

__all__ = ["RandomSearch"]


class RandomSearch(Strategy):
    """Random search (Li & Talwalkar, UAI 2019): uniform samples, each arch at most once."""

    name = "random"
    max_objectives = None  # objective-agnostic: the driver reports the Pareto front
    default_ask_size = 32

    def __init__(self, space: Any, rng: np.random.Generator, *, n_objectives: int = 1, retries: int = 100) -> None:
        super().__init__(space, rng, n_objectives=n_objectives)
        self.retries = retries
        self._asked: set[str] = set()
        self._scores: dict[str, tuple[Score, float]] = {}

    def ask(self, n: int) -> list[str]:
        out: list[str] = []
        for _ in range(n):
            arch = self.draw_unseen(self._asked, self.retries)
            if arch is None:
                break
            self._asked.add(arch)
            out.append(arch)
        return out

    def tell(self, archs: Sequence[str], scores: Sequence[Score], violations: Sequence[float] | None = None) -> None:
        violations = violations if violations is not None else [0.0] * len(archs)
        for a, s, v in zip(archs, scores, violations):
            self._scores[a] = (s, float(v))

    def rescore(self, score_of: Callable[[str], Score]) -> None:
        self._scores = {a: (score_of(a), v) for a, (_, v) in self._scores.items()}

    def best(self) -> str | None:
        if not self._scores:
            return None
        return max(self._scores, key=lambda a: fitness_key(*self._scores[a]))


STRATEGIES.register("random", RandomSearch, description="random search: uniform samples without replacement (Li & Talwalkar, UAI 2019)")
