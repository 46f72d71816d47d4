"""The one progress bar: drawn only when stdout and its stream are terminals (CONTRACT)."""

from __future__ import annotations

import io
import sys

from searchkd.progress import Progress, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_when_stdout_is_not_a_terminal(monkeypatch) -> None:
    err = _Tty()
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # e.g. `searchkd score … > table.txt`
    with Progress(3, "scoring", stream=err) as p:
        p.update(3)
        p.line("epoch 1")
    assert err.getvalue() == ""


def test_drawn_on_a_terminal_unless_disabled(monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdout", _Tty())
    err = _Tty()
    with Progress(2, "search", stream=err) as p:
        p.update(1)
        p.line("epoch 1 loss 0.5")
        p.moveto(2, best=0.25)
    text = err.getvalue()
    assert "2/2" in text and "best 0.25" in text and "\repoch 1 loss 0.5\033[K\n" in text and text.endswith("\n")
    off = _Tty()
    with Progress(2, "search", enabled=False, stream=off) as p:
        p.update(2)
    assert off.getvalue() == ""


def test_iterating_passes_items_through() -> None:
    assert list(progress(iter("abc"), total=3, enabled=False)) == ["a", "b", "c"]
