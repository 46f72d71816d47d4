"""The one error type for bad user input.

Anything raised as :class:`SearchKDError` is the user's to fix (an unknown name, a
malformed arch, a missing file). The CLI turns it into one line on stderr and exit
code 2; every other exception is a bug and exits 1.
"""

from __future__ import annotations

__all__ = ["SearchKDError", "first_line"]


class SearchKDError(ValueError):
    """Bad input: the message says what is wrong and what is accepted."""


def first_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 160 characters), for one-line errors that
    wrap a library's exception."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:160]}" if lines else type(e).__name__
