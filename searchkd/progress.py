"""searchkd's one progress bar: drawn on stderr only when stdout and stderr are terminals
(the CONTRACT: quiet when stdout is not a TTY), silent otherwise or with ``enabled=False``."""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

__all__ = ["Progress", "progress"]


class Progress:
    """``with Progress(total, "scoring") as p: p.update(1, best=...)``.

    ``enabled``: None or True draw only on a terminal (stdout and ``stream`` both TTYs);
    False never draws. :meth:`line` prints a finished line (an epoch's summary) above the bar.
    """

    def __init__(self, total: int | None, desc: str = "", *, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        # only ever on a terminal (CONTRACT); enabled=False silences it there too
        self.enabled = enabled is not False and _isatty(self.stream) and _isatty(sys.stdout)
        self.total, self.desc, self.n = total, desc, 0
        self.t0 = time.perf_counter()
        self._last = 0.0
        self.info = ""

    def update(self, n: int = 1, **info: Any) -> None:
        self.n += n
        if info:
            self.info = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.1 or self.n == self.total):
            self._last = now
            self._draw(now)

    def moveto(self, n: int, **info: Any) -> None:
        """Set the count to ``n`` (for callers that know the total done so far)."""
        self.update(n - self.n, **info)

    def _draw(self, now: float) -> None:
        rate = self.n / max(now - self.t0, 1e-9)
        if self.total:
            frac = self.n / self.total
            bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
            left = f"{self.n}/{self.total} [{bar}] {100 * frac:3.0f}%"
        else:
            left = f"{self.n}"
        self.stream.write(f"\r{self.desc} {left} {rate:.2f}/s {self.info}\033[K")
        self.stream.flush()

    def line(self, text: str) -> None:
        """Print ``text`` as a line of its own (the bar, if any, is redrawn by the next update)."""
        if self.enabled:
            self.stream.write(f"\r{text}\033[K\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress(items: Iterable[T], total: int | None = None, desc: str = "", enabled: bool | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar."""
    with Progress(total, desc, enabled=enabled) as p:
        for x in items:
            yield x
            p.update(1)
