"""A toy search space with a known optimum, and fake evaluators, for strategy/driver tests.

4 positions × 6 values (1,296 archs) written ``a-b-c-d``; the objective is separable,
``score = -sum((v_i - target_i)^2)``, maximal (0) at ``TARGET``; params grow with the sum
of the values, so the score/params trade-off has a non-trivial Pareto front.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from searchkd.spaces.base import SearchSpace, as_rng

TARGET = (4, 1, 5, 2)
OPTIMUM = "4-1-5-2"


class ToySpace(SearchSpace):
    name = "toy"
    description = "4 positions x 6 values"
    default_teacher = ""

    def __init__(self, n: int = 4, k: int = 6) -> None:
        self.n, self.k = n, k

    def sample(self, rng: Any = None) -> str:
        return self.decode(as_rng(rng).integers(self.k, size=self.n))

    def bounds(self) -> list[int]:
        return [self.k] * self.n

    def encode(self, arch: str) -> list[int]:
        return [int(x) for x in arch.split("-")]

    def decode(self, vec: Any) -> str:
        return "-".join(str(v) for v in self._check_vec(vec))

    def build(self, arch: str, num_classes: int = 10) -> Any:  # pragma: no cover
        raise NotImplementedError

    def cost(self, arch: str) -> dict[str, float]:
        v = self.encode(arch)
        return {"params": 0.1 + 0.01 * sum(v), "flops": 1.0 + sum(v)}


def toy_score(arch: str) -> float:
    v = [int(x) for x in arch.split("-")]
    return -float(sum((a - b) ** 2 for a, b in zip(v, TARGET[: len(v)])))


def toy_record(arch: str) -> dict[str, Any]:
    v = [int(x) for x in arch.split("-")]
    return {"arch": arch, "scores": {"toy": toy_score(arch), "neg": -toy_score(arch) - 0.5 * v[0]},
            "params": 0.1 + 0.01 * sum(v), "flops": 1.0 + sum(v), "seconds": 0.0}


class CountingEvaluator:
    """A fake objective that records every arch it is asked to score."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, archs: Sequence[str]) -> list[dict[str, Any]]:
        self.calls.extend(archs)
        return [toy_record(a) for a in archs]


def toy_factory() -> CountingEvaluator:
    return CountingEvaluator()


def run_strategy(strategy: Any, budget: int, ask: int = 8) -> tuple[str | None, int]:
    """Drive a strategy by hand with a dedupe cache; (best arch, distinct evaluations)."""
    cache: dict[str, float] = {}
    stale = 0
    while len(cache) < budget and stale < 100:
        archs = strategy.ask(ask)
        n0 = len(cache)
        for a in archs:
            if a not in cache and len(cache) < budget:
                cache[a] = toy_score(a)
        told = [a for a in archs if a in cache]
        strategy.tell(told, [cache[a] for a in told])
        stale = 0 if len(cache) > n0 else stale + 1
    return strategy.best(), len(cache)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def toy_factory_for(config: Any) -> Any:
    """A sweep's evaluator_factory: the same fake objective for every search."""
    return toy_factory


def square_pid(x: int) -> list[int]:
    """A trial's work for the run-once tests: the square, and the process it ran in."""
    import os

    return [x * x, os.getpid()]


def refuse(x: int) -> None:
    from searchkd.errors import SearchKDError

    raise SearchKDError(f"bad value {x}")
