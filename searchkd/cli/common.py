"""What the commands share: comma lists, ``--teacher auto`` and searchkd's warnings as one line."""

from __future__ import annotations

import argparse
from typing import Any

from searchkd.errors import SearchKDError

__all__ = ["csv_list", "resolve_teacher_arg", "warning_lines", "one_line_warnings"]


def csv_list(s: str) -> list[str]:
    """``a, b,,c`` → ``['a', 'b', 'c']``."""
    return [x.strip() for x in s.split(",") if x.strip()]


def resolve_teacher_arg(args: argparse.Namespace) -> str | None:
    """``--teacher auto`` → the capacity-gap pick among ``--teacher-candidates`` (reason on stderr)."""
    import sys

    if args.teacher != "auto":
        return args.teacher
    from searchkd import api

    if not args.teacher_candidates:
        raise SearchKDError("--teacher auto needs --teacher-candidates NAME,NAME,...")
    if args.max_params is None:
        raise SearchKDError("--teacher auto needs the student budget --max-params M")
    choice = api.pick_teacher(args.max_params, args.teacher_candidates)
    print(f"teacher: {choice.reason}", file=sys.stderr)
    return choice.teacher


def warning_lines(show: Any) -> Any:
    """``warnings.showwarning`` that prints searchkd's own warnings as one line on stderr, as they
    happen (a teacher near chance: before hours of training); others as ``show`` does."""
    import sys

    def showwarning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if "searchkd" in str(filename):
            print(f"searchkd: warning: {message}", file=sys.stderr, flush=True)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def one_line_warnings(run: Any) -> Any:
    """``run(args)`` with searchkd's own warnings (a teacher smaller than the space's students) as
    one ``searchkd: warning:`` line each, as ``search`` prints them."""
    import functools

    @functools.wraps(run)
    def wrapped(args: argparse.Namespace) -> int:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("default", UserWarning)
            warnings.showwarning = warning_lines(warnings.showwarning)
            return run(args)

    return wrapped
