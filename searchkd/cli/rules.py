"""Flags that a command would accept and then ignore: refused in one line instead (issue 23).

The settings of a search itself (strategy options, SuperLM settings) are checked where every
config is, CLI or not (:mod:`searchkd.orchestrate.applicable`); here are the flags that only
steer the command line: a ground-truth column without a ground truth, Ray resources on a local
run, candidate teachers without ``--teacher auto``. A flag counts as given when its value
differs from its default (passing the default changes nothing either way).
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from searchkd.errors import SearchKDError

__all__ = ["check_flags_apply"]

#: (the flag's dest, when it would be ignored, what it does, why not here)
Rule = tuple[str, Callable[[argparse.Namespace], bool], str, str]

_NO_GT, _LOCAL, _NO_AUTO = (lambda a: a.ground_truth is None), (lambda a: a.runner != "ray"), (lambda a: a.teacher != "auto")
_NO_TASK = (lambda a: a.task is None)
_RULES: dict[str, tuple[Rule, ...]] = {
    "search": (
        ("column", _NO_GT, "names the accuracy column of --ground-truth", "there is no --ground-truth"),
        ("dataset", _NO_GT, "picks the dataset of --ground-truth nb201:FILE.pth", "there is no --ground-truth"),
        ("cpus_per_trial", _LOCAL, "sizes the trials of --runner ray", "this search runs locally"),
        ("gpus_per_trial", _LOCAL, "sizes the trials of --runner ray", "this search runs locally"),
        ("teacher_candidates", _NO_AUTO, "are the choices of --teacher auto", "the teacher is not auto"),
    ),
    "acm": (
        ("task_steps", _NO_TASK, "sets the dense model's fine-tuning steps on --task", "there is no --task"),
    ),
    "score": (
        ("teacher_candidates", _NO_AUTO, "are the choices of --teacher auto", "the teacher is not auto"),
        ("max_params", _NO_AUTO, "is the student budget --teacher auto sizes the teacher to", "the teacher is not auto"),
    ),
}


def _defaults(parser: argparse.ArgumentParser, command: str) -> dict[str, Any]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return {a.dest: a.default for a in action.choices[command]._actions}
    return {}


def check_flags_apply(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A :class:`SearchKDError` naming the first given flag of ``args`` that its command would ignore."""
    rules = _RULES.get(getattr(args, "command", None) or "", ())
    if not rules:
        return
    defaults = _defaults(parser, args.command)
    for dest, ignored, what, why in rules:
        if getattr(args, dest, None) != defaults.get(dest) and ignored(args):
            flag = "--" + dest.replace("_", "-")
            raise SearchKDError(f"{args.command}: {flag} {what}, and {why}: it would be ignored; leave it out")
