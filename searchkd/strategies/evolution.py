"""Regularized (aging) evolution: Real, Aggarwal, Huang & Le, "Regularized Evolution for
Image Classifier Architecture Search" (AAAI 2019).

The population starts as ``population`` random architectures. Each child comes from a
tournament: ``sample_size`` members drawn uniformly *with* replacement (as in the paper's
Algorithm 1), the best is the parent, and the child is ``space.mutate(parent)`` (one encoded
position changed). A told child joins the population and the *oldest* member leaves
(aging), whatever its score.

Defaults follow DisWOT (Dong et al., CVPR 2023), which searches NAS-Bench-201 with this
algorithm: population 36, sample size 8; the budget counts proxy evaluations.

Departures:

* The paper evaluates one child at a time. Here ``ask(n)`` draws ``n`` children from the
  current population before any of them is told (a batch, so a runner can evaluate them in
  parallel).
* A budget counts *distinct* architectures (a benchmark's lookup, or a proxy score, of an
  arch seen before tells nothing new). A child that was already told or already asked in
  this batch is redrawn (a new tournament and mutation, up to ``redraws`` times), then
  replaced by a fresh uniform sample not seen before; so a converged population keeps
  exploring until the budget or the space is exhausted, and evolution and random search
  compare at equal budgets. With ``redraws=0`` and ``n = 1`` the algorithm is the
  paper's (a repeat is then answered from the driver's cache and costs nothing).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Sequence

import numpy as np

from searchkd.errors import SearchKDError
from searchkd.registry import STRATEGIES
from searchkd.strategies.base import Score, Strategy, fitness_key

__all__ = ["RegularizedEvolution"]


class RegularizedEvolution(Strategy):
    """Regularized evolution (Real et al., AAAI 2019) with DisWOT's defaults (population 36, sample 8).

    Args:
        space: the space searched (its ``sample`` and ``mutate`` are used).
        rng: the only source of randomness.
        population: the population size (the number of initial random samples).
        sample_size: the tournament size.
        redraws: new tournaments tried for a child that repeats a seen arch, before a
            fresh unseen sample replaces it.
    """

    name = "evolution"
    max_objectives = 1
    default_ask_size = 8

    @classmethod
    def budget_note(cls, budget: int, options: Any) -> str | None:
        """A one-line note when ``budget`` leaves no evolution step: every arch then comes from
        the random initial population, so the search is a random search (and, on a SuperLM,
        the same archs as ``autodistil``'s random order)."""
        population = int(options.get("population", 36))
        if budget > population:
            return None
        return (f"evolution: --budget {budget} is not above the population ({population}): every arch is from the "
                f"random initial population and no evolution step ran (a random search); give a budget above "
                f"{population}, or a smaller population (options={{'population': N}} in Python or a sweep)")

    def __init__(self, space: Any, rng: np.random.Generator, *, n_objectives: int = 1,
                 population: int = 36, sample_size: int = 8, redraws: int = 10) -> None:
        super().__init__(space, rng, n_objectives=n_objectives)
        if population < 1 or not 1 <= sample_size or redraws < 0:
            raise SearchKDError(f"evolution: population ({population}) and sample_size ({sample_size}) must be ≥ 1, "
                                f"redraws ({redraws}) ≥ 0")
        self.redraws = int(redraws)
        self.population_size = int(population)
        self.sample_size = int(sample_size)
        self._initial_asked = 0
        #: (arch, score, violation), oldest first
        self.population: deque[tuple[str, Score, float]] = deque(maxlen=self.population_size)
        self._told: dict[str, tuple[Score, float]] = {}

    def ask(self, n: int) -> list[str]:
        seen = set(self._told)
        out: list[str] = []
        if self._initial_asked < self.population_size or not self.population:
            k = max(1, min(n, self.population_size - self._initial_asked))
            self._initial_asked += k
            for _ in range(k):
                arch = self.draw_unseen(seen)
                if arch is None:
                    break
                seen.add(arch)
                out.append(arch)
            return out
        for _ in range(n):
            arch = None
            for _ in range(self.redraws + 1):
                child = self.space.mutate(self._tournament(), self.rng)
                if child not in seen or self.redraws == 0:
                    arch = child
                    break
            if arch is None:
                arch = self.draw_unseen(seen)
                if arch is None:  # the space is exhausted
                    break
            seen.add(arch)
            out.append(arch)
        return out

    def _tournament(self) -> str:
        members = list(self.population)
        idx = self.rng.integers(len(members), size=self.sample_size)
        # ties go to the first drawn, so the result depends only on the rng
        best = max(range(len(idx)), key=lambda j: (fitness_key(members[idx[j]][1], members[idx[j]][2]), -j))
        return members[idx[best]][0]

    def tell(self, archs: Sequence[str], scores: Sequence[Score], violations: Sequence[float] | None = None) -> None:
        violations = violations if violations is not None else [0.0] * len(archs)
        for a, s, v in zip(archs, scores, violations):
            self.population.append((a, s, float(v)))
            self._told[a] = (s, float(v))

    def rescore(self, score_of: Callable[[str], Score]) -> None:
        self.population = deque(((a, score_of(a), v) for a, _, v in self.population), maxlen=self.population_size)
        self._told = {a: (score_of(a), v) for a, (_, v) in self._told.items()}

    def best(self) -> str | None:
        if not self._told:
            return None
        return max(self._told, key=lambda a: fitness_key(*self._told[a]))

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "population": [a for a, _, _ in self.population]}


STRATEGIES.register("evolution", RegularizedEvolution,
                    description="regularized evolution (Real et al., AAAI 2019), DisWOT defaults: population 36, sample 8")
