"""The one error type for bad user input.

Anything raised as :class:`SearchKDError` is the user's to fix (an unknown name, a
malformed arch, a missing file). The CLI turns it into one line on stderr and exit
code 2; every other exception is a bug and exits 1.
"""

from __future__ import annotations

__all__ = ["SearchKDError", "first_line", "check_finite_loss"]


class SearchKDError(ValueError):
    """Bad input: the message says what is wrong and what is accepted."""


def first_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 160 characters), for one-line errors that
    wrap a library's exception."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:160]}" if lines else type(e).__name__


def check_finite_loss(value: float, where: str) -> None:
    """Stop a training run whose loss turned NaN or ±inf, in one line (a diverged run trains on
    to chance and would still report a result). ``where``: the run and its step or epoch."""
    import math

    if not math.isfinite(value):
        raise SearchKDError(f"{where}: the training loss became {value} (diverged); lower the learning rate or "
                            f"check the weights and settings, then rerun")
