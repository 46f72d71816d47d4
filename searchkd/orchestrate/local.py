"""The local runner (no Ray) and the evaluator factory both runners share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Generator, Sequence

from searchkd.types import SearchConfig

__all__ = ["LocalRunner", "EvaluatorFactory", "eval_config", "MAX_FAILURES"]

#: retries of a failed Ray Tune trial, for a search's chunks and a sweep's searches alike
MAX_FAILURES = 2

Records = list[dict[str, Any]]

_PATH_DATA = ("npz:", "cifar10:", "cifar100:", "folder:", "text:")


def _absolute_data(data: str) -> str:
    # Ray Tune may run trials in another working directory: ship absolute paths
    for prefix in _PATH_DATA:
        if data.startswith(prefix):
            return prefix + os.path.abspath(os.path.expanduser(data[len(prefix):]))
    return data


def _abspath(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def absolute_config(config: SearchConfig) -> SearchConfig:
    """``config`` with every path absolute (data, an ``hf:DIR`` or ``nni:FILE`` teacher or
    space, teacher weights, a SuperLM directory): Ray Tune runs trials in other directories."""
    from dataclasses import replace

    from searchkd.spaces._nni_spec import absolute_spec

    def spec(s: str | None) -> str | None:
        if s and s.startswith("nni:"):
            return absolute_spec(s)
        if s and s.startswith("hf:"):
            return "hf:" + _abspath(s[3:])
        return s

    return replace(config, space=spec(config.space), teacher=spec(config.teacher), data=_absolute_data(config.data),
                   teacher_weights=_abspath(config.teacher_weights), supernet=_abspath(config.supernet))


def eval_config(config: SearchConfig) -> Any:
    """The :class:`~searchkd.evaluate.EvalConfig` of a search config (paths made absolute)."""
    from searchkd.evaluate import EvalConfig

    c = absolute_config(config)
    return EvalConfig(space=c.space, proxies=c.proxies, teacher=c.teacher, teacher_weights=c.teacher_weights,
                      data=c.data, batch_size=c.batch_size, seed=c.seed if c.proxy_seed is None else c.proxy_seed,
                      device=c.device, supernet=c.supernet)


@dataclass(frozen=True)
class EvaluatorFactory:
    """A picklable recipe for the objective: ``factory()`` → ``evaluate(archs) -> records``.

    Ray workers receive this (a JSON-friendly config) and build their own
    :class:`~searchkd.evaluate.Evaluator`.
    """

    config: Any  # EvalConfig

    def __call__(self) -> Callable[[Sequence[str]], Records]:
        from searchkd.evaluate import Evaluator

        return Evaluator(self.config)


class LocalRunner:
    """Evaluates batches in this process, one architecture after another."""

    def __init__(self, factory: Callable[[], Callable[[Sequence[str]], Records]]) -> None:
        self.factory = factory
        self._evaluate: Callable[[Sequence[str]], Records] | None = None

    def evaluate(self, archs: Sequence[str]) -> Records:
        if self._evaluate is None:
            self._evaluate = self.factory()
        return list(self._evaluate(list(archs)))

    def prime(self) -> None:
        """Build the evaluator and its scorer now (teacher, batch, proxy state), so that bad
        input (a teacher that does not load, a batch that does not fit) is found before the
        search writes anything; the search then uses this evaluator."""
        if self._evaluate is None:
            self._evaluate = self.factory()
        getattr(self._evaluate, "scorer", None)

    def run_once(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, here (the Ray runner runs it as one Tune trial)."""
        return fn(*args)

    def drive(self, steps: Generator[list[str], Records, Any]) -> Any:
        """Run the driver loop to its end, evaluating each batch here; its return value."""
        try:
            batch = next(steps)
            while True:
                batch = steps.send(self.evaluate(batch))
        except StopIteration as stop:
            return stop.value

    def close(self) -> None:
        self._evaluate = None
