"""searchkd's one progress bar: drawn on stderr only when stdout and stderr are terminals
(the CONTRACT: quiet when stdout is not a TTY), silent otherwise or with ``enabled=False``.

The bar shows the elapsed time and, once something is done, the time left
(``search 12/100 [##----] 12% 0:35 elapsed, 4:17 left 0.34/s best 0.52``). Before the
first step it says what is happening (``status``, default "starting") with a clock that
ticks once a second, so the seconds of loading data and preparing a teacher are not silent.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from typing import Any, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

__all__ = ["Progress", "progress", "clock"]

_clock = time.perf_counter  # tests replace it
_TICK = 1.0  # seconds between redraws before the first step


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on)."""
    s = max(int(seconds), 0)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class Progress:
    """``with Progress(total, "scoring") as p: p.update(1, best=...)``.

    ``enabled``: None or True draw only on a terminal (stdout and ``stream`` both TTYs);
    False never draws. ``status``: what the bar says before the first step (data loading,
    a teacher being prepared). :meth:`line` prints a finished line (an epoch's summary)
    above the bar.
    """

    def __init__(self, total: int | None, desc: str = "", *, enabled: bool | None = None, stream: TextIO | None = None,
                 status: str = "starting") -> None:
        self.stream = stream or sys.stderr
        # only ever on a terminal (CONTRACT); enabled=False silences it there too
        self.enabled = enabled is not False and _isatty(self.stream) and _isatty(sys.stdout)
        self.total, self.desc, self.n = total, desc, 0
        self.status = status
        self._base = 0  # steps done before this run (a resume's replay): not part of the rate
        self.t0 = _clock()
        self._last = 0.0
        self._started = False  # any step done (the status and the ticking clock stop then)
        self.info = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if self.enabled:
            self._draw(self.t0)
            ticker = threading.Thread(target=_tick, args=(weakref.ref(self), self._stop), daemon=True,
                                      name="searchkd-progress")
            ticker.start()

    @property
    def n(self) -> int:
        return self._n

    @n.setter
    def n(self, value: int) -> None:
        if value == 0 and getattr(self, "_n", 0):  # a new round (distill: the next epoch): its own clock
            self.t0 = _clock()
        self._n = value

    def update(self, n: int = 1, **info: Any) -> None:
        self.n += n
        if n:
            self._started = True
            self._stop.set()
        if info:
            self.info = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
        now = _clock()
        if self.enabled and (now - self._last > 0.1 or self.n == self.total):
            self._draw(now)

    def moveto(self, n: int, **info: Any) -> None:
        """Set the count to ``n`` (for callers that know the total done so far)."""
        self.update(n - self.n, **info)

    def replayed(self, n: int) -> None:
        """``n`` more steps were done by an earlier run (a resume replays them): they count
        toward the total but not toward the rate, so the time left is this run's."""
        self._base += n
        self.n += n

    def text(self, now: float | None = None) -> str:
        """The bar as it would be drawn now (without the terminal's control characters)."""
        now = _clock() if now is None else now
        elapsed = now - self.t0
        if self.total:
            frac = min(self.n / self.total, 1.0)
            bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
            left = f"{self.n}/{self.total} [{bar}] {100 * frac:3.0f}%"
        else:
            left = f"{self.n}"
        timing = f"{clock(elapsed)} elapsed"
        if not self._started:
            return f"{self.desc} {left} {timing}: {self.status}…"
        rate = (self.n - self._base) / max(elapsed, 1e-9)
        if self.total and 0 < self.n < self.total and rate > 0:
            timing += f", {clock((self.total - self.n) / rate)} left"
        return f"{self.desc} {left} {timing} {rate:.2f}/s {self.info}".rstrip()

    def _draw(self, now: float) -> None:
        with self._lock:
            self._last = now
            self.stream.write(f"\r{self.text(now)}\033[K")
            self.stream.flush()

    def line(self, text: str) -> None:
        """Print ``text`` as a line of its own (the bar, if any, is redrawn by the next update)."""
        if self.enabled:
            with self._lock:
                self.stream.write(f"\r{text}\033[K\n")
                self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self.enabled:
            self._draw(_clock())
            with self._lock:
                self.stream.write("\n")
                self.stream.flush()
            self.enabled = False  # a second close draws nothing

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _tick(ref: "weakref.ref[Progress]", stop: threading.Event) -> None:
    """Redraw the bar (its elapsed clock) every second until the first step, close, or the bar
    is gone; holds no reference to it in between."""
    while not stop.wait(_TICK):
        bar = ref()
        if bar is None or not bar.enabled:
            return
        bar._draw(_clock())
        del bar


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
