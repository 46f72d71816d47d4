"""The local runner (no Ray) and the evaluator factory both runners share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator, Sequence

from searchkd.evaluate.evaluator import _absolute_data, absolute_config, eval_config  # noqa: F401

__all__ = ["LocalRunner", "EvaluatorFactory", "eval_config", "MAX_FAILURES"]

#: retries of a failed Ray Tune trial, for a search's chunks and a sweep's searches alike
MAX_FAILURES = 2

Records = list[dict[str, Any]]

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
