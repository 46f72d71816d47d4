"""NSGA-II: Deb, Pratap, Agarwal & Meyarivan, "A Fast and Elitist Multiobjective Genetic
Algorithm: NSGA-II" (IEEE TEVC 2002), as implemented by pymoo (Blank & Deb, IEEE Access 2020).

pymoo's NSGA-II is driven through its ask/tell interface on the space's integer encoding
(``space.encode/decode/bounds``) with pymoo's recipe for integer variables: integer random
sampling, SBX crossover and polynomial mutation rounded back to integers. pymoo minimises,
so the maximised objectives are told negated; the constraint (``max_params``) is one
inequality ``G = violation ≤ 0``. pymoo is imported here and nowhere else.

Departures: the encodings of NB-201 and similar spaces are categorical, and SBX/PM treat
them as ordinal (pymoo's documented integer recipe). pymoo removes duplicates within a
generation only; an offspring that repeats an architecture told in an earlier generation is
replaced (in pymoo's population too) by a uniform sample not seen before, a random
immigrant, so a budget counts distinct architectures until the space is exhausted.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from searchkd.errors import SearchKDError
from searchkd.registry import STRATEGIES
from searchkd.strategies.base import Score, Strategy, as_objectives, fitness_key

__all__ = ["NSGA2Search", "non_dominated"]


def non_dominated(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates (all coordinates maximised)."""
    pts = np.asarray(points, dtype=float)
    keep = []
    for i, p in enumerate(pts):
        dominated = np.any(np.all(pts >= p, axis=1) & np.any(pts > p, axis=1))
        if not dominated:
            keep.append(i)
    return keep


class NSGA2Search(Strategy):
    """NSGA-II (Deb et al., IEEE TEVC 2002) through pymoo's ask/tell on integer encodings.

    Args:
        space: the space searched (``encode``/``decode``/``bounds``).
        rng: seeds pymoo's own Generator (one integer drawn from it).
        n_objectives: objectives per arch, all maximised.
        population: pymoo's ``pop_size`` (offspring per generation too).
    """

    name = "nsga2"
    max_objectives = None
    default_ask_size = 36

    def __init__(self, space: Any, rng: np.random.Generator, *, n_objectives: int = 1, population: int = 36) -> None:
        super().__init__(space, rng, n_objectives=n_objectives)
        if population < 2:
            raise SearchKDError(f"nsga2: population must be ≥ 2, got {population}")
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling

        self.bounds = [int(b) for b in space.bounds()]
        self.population_size = int(population)
        self.problem = Problem(n_var=len(self.bounds), n_obj=n_objectives, n_ieq_constr=1, xl=0,
                               xu=np.array(self.bounds) - 1, vtype=int)
        self.algorithm = NSGA2(
            pop_size=self.population_size,
            sampling=IntegerRandomSampling(),
            crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
            mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        self.algorithm.setup(self.problem, termination=("n_gen", 10**9), seed=int(rng.integers(2**31 - 1)), verbose=False)
        self._pending: Any = None  # the pymoo Population asked and not yet told
        self._pending_archs: list[str] = []
        self._queue: list[str] = []
        self._told: dict[str, tuple[tuple[float, ...], float]] = {}

    def _decode(self, x: Any) -> str:
        vec = [min(max(int(round(float(v))), 0), b - 1) for v, b in zip(x, self.bounds)]
        return self.space.decode(vec)

    def ask(self, n: int) -> list[str]:
        if self._pending is None:
            self._pending = self.algorithm.ask()
            X = np.array(self._pending.get("X"))
            seen = set(self._told)
            self._pending_archs = []
            for row, x in enumerate(X):
                arch = self._decode(x)
                if arch in seen:
                    fresh = self.draw_unseen(seen)
                    if fresh is not None:
                        arch = fresh
                        X[row] = self.space.encode(fresh)
                seen.add(arch)
                self._pending_archs.append(arch)
            self._pending.set("X", X)
            self._queue = list(self._pending_archs)
        out, self._queue = self._queue[:n], self._queue[n:]
        return out

    def tell(self, archs: Sequence[str], scores: Sequence[Score], violations: Sequence[float] | None = None) -> None:
        violations = violations if violations is not None else [0.0] * len(archs)
        for a, s, v in zip(archs, scores, violations):
            obj = as_objectives(s)
            if len(obj) != self.n_objectives:
                raise ValueError(f"nsga2 expects {self.n_objectives} objective(s) per arch, got {len(obj)}")
            self._told[a] = (obj, float(v))
        if self._pending is not None and not self._queue and all(a in self._told for a in self._pending_archs):
            self._advance()

    def _advance(self) -> None:
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        F = np.array([[-_finite(x) for x in self._told[a][0]] for a in self._pending_archs], dtype=float)
        G = np.array([[self._told[a][1]] for a in self._pending_archs], dtype=float)
        Evaluator().eval(StaticProblem(self.problem, F=F, G=G), self._pending)
        self.algorithm.tell(infills=self._pending)
        self._pending, self._pending_archs = None, []

    def rescore(self, score_of: Callable[[str], Score]) -> None:
        self._told = {a: (as_objectives(score_of(a)), v) for a, (_, v) in self._told.items()}
        pop = self.algorithm.pop
        if pop is None or len(pop) == 0:
            return
        archs = [self._decode(x) for x in pop.get("X")]
        if not all(a in self._told for a in archs):
            return
        pop.set("F", np.array([[-_finite(x) for x in self._told[a][0]] for a in archs], dtype=float))
        # rank and crowding drive the parents' tournament: recompute them for the new values
        self.algorithm.pop = self.algorithm.survival.do(self.problem, pop, n_survive=len(pop),
                                                        algorithm=self.algorithm,
                                                        random_state=self.algorithm.random_state)

    def best(self) -> str | None:
        if not self._told:
            return None
        return max(self._told, key=lambda a: fitness_key(self._told[a][0], self._told[a][1]))

    def front(self) -> list[str]:
        """The feasible non-dominated architectures told so far (the Pareto front)."""
        feasible = [a for a, (_, v) in self._told.items() if v <= 0]
        return [feasible[i] for i in non_dominated([self._told[a][0] for a in feasible])] if feasible else []


def _finite(x: float) -> float:
    # pymoo's sorting breaks on inf; a failed proxy (-inf) becomes a very bad finite value
    return x if math.isfinite(x) else (-1e300 if x < 0 or math.isnan(x) else 1e300)


STRATEGIES.register("nsga2", NSGA2Search,
                    description="NSGA-II (Deb et al., IEEE TEVC 2002) via pymoo on integer encodings; multi-objective")
