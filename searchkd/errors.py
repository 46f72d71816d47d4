"""The one error type for bad user input.

Anything raised as :class:`SearchKDError` is the user's to fix (an unknown name, a
malformed arch, a missing file). The CLI turns it into one line on stderr and exit
code 2; every other exception is a bug and exits 1.
"""

from __future__ import annotations

__all__ = ["SearchKDError"]


class SearchKDError(ValueError):
    """Bad input: the message says what is wrong and what is accepted."""
