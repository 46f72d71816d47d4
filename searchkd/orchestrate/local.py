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


def eval_config(config: SearchConfig) -> Any:
    """The :class:`~searchkd.evaluate.EvalConfig` of a search config (paths made absolute)."""
    from searchkd.evaluate import EvalConfig
    from searchkd.spaces._nni_spec import absolute_spec

    space, teacher = (absolute_spec(s) if s and s.startswith("nni:") else s for s in (config.space, config.teacher))
    return EvalConfig(space=space, proxies=config.proxies, teacher=teacher,
                      teacher_weights=None if config.teacher_weights is None else os.path.abspath(config.teacher_weights),
                      data=_absolute_data(config.data), batch_size=config.batch_size,
                      seed=config.seed if config.proxy_seed is None else config.proxy_seed, device=config.device)


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
