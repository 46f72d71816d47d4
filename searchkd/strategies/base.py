"""The ask/tell interface every search strategy offers.

A strategy proposes architectures (``ask``) and learns their scores (``tell``); it never
evaluates anything itself, never sees Ray, and draws all randomness from the
``numpy.random.Generator`` it is given, so the same seed and the same told scores give
the same asks (which is what makes a search resumable by replay).

Scores are "higher is better". A score is a float, or for multi-objective strategies a
sequence of floats (each maximised; a minimised cost is told negated). Infeasible
architectures are told with a positive ``violation``; they lose to every feasible one and
among themselves the smaller violation wins.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from searchkd.errors import SearchKDError

__all__ = ["Strategy", "Score", "as_objectives", "fitness_key"]

Score = float | Sequence[float]


def as_objectives(score: Score) -> tuple[float, ...]:
    """A told score as a tuple of floats (a scalar becomes a 1-tuple)."""
    if isinstance(score, (int, float, np.floating, np.integer)):
        return (float(score),)
    return tuple(float(s) for s in score)


def fitness_key(score: Score, violation: float = 0.0) -> tuple[float, float]:
    """Sort key of a single-objective strategy: feasible first, then the (first) score."""
    v = as_objectives(score)[0]
    if math.isnan(v):
        v = -math.inf
    return (-float(violation), v) if violation > 0 else (0.0, v)


class Strategy(ABC):
    """Base of the ask/tell strategies.

    Args:
        space: the :class:`~searchkd.spaces.base.SearchSpace` searched.
        rng: the strategy's only source of randomness.
        n_objectives: how many objectives ``tell`` will give per arch.

    Class attributes:
        max_objectives: the most objectives the strategy takes (None: any number).
        default_ask_size: the batch the driver asks for when the config gives none.
    """

    name: str = ""
    max_objectives: int | None = 1
    default_ask_size: int = 8

    def __init__(self, space: Any, rng: np.random.Generator, *, n_objectives: int = 1) -> None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError("a strategy takes a numpy.random.Generator (never the global RNG)")
        self.check_objectives(n_objectives)
        self.space = space
        self.rng = rng
        self.n_objectives = n_objectives

    @classmethod
    def check_objectives(cls, n_objectives: int) -> None:
        """:class:`SearchKDError` when the strategy cannot take ``n_objectives`` objectives."""
        if n_objectives < 1:
            raise SearchKDError("at least one objective is needed")
        if cls.max_objectives is not None and n_objectives > cls.max_objectives:
            raise SearchKDError(
                f"strategy {cls.name!r} optimises {cls.max_objectives} objective(s), got {n_objectives}; "
                "use nsga2 for several objectives"
            )

    @abstractmethod
    def ask(self, n: int) -> list[str]:
        """Up to ``n`` architectures to evaluate next (possibly fewer, never none unless done)."""

    @abstractmethod
    def tell(self, archs: Sequence[str], scores: Sequence[Score], violations: Sequence[float] | None = None) -> None:
        """The scores of asked architectures (all of the last ask, or a subset at the very end)."""

    @abstractmethod
    def best(self) -> str | None:
        """The best architecture told so far (feasible first), None before any tell."""

    def draw_unseen(self, seen: set[str] | frozenset[str], retries: int = 100) -> str | None:
        """A uniform sample of the space not in ``seen``: up to ``retries`` draws, then a draw
        from the archs left when the space is small enough to list (None when none is left;
        where it is too large to list, a repeat, which the driver answers from its cache)."""
        for _ in range(retries):
            arch = self.space.sample(self.rng)
            if arch not in seen:
                return arch
        size = self.space.size()
        if size is None or size > 2_000_000:
            return self.space.sample(self.rng)
        left = [v for v in np.ndindex(*self.space.bounds()) if self.space.decode(list(v)) not in seen]
        if not left:
            return None
        return self.space.decode(list(left[int(self.rng.integers(len(left)))]))

    def rescore(self, score_of: Callable[[str], Score]) -> None:
        """Replace the scores held for told archs (used when the objective is a rank that
        moves as more archs are evaluated). The default keeps the told scores."""

    def state(self) -> Mapping[str, Any]:
        """A small JSON-friendly summary for logs and tests."""
        return {"name": self.name}
