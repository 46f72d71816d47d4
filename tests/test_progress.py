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


def test_elapsed_and_time_left(monkeypatch) -> None:
    import searchkd.progress as prog

    now = [100.0]
    monkeypatch.setattr(prog, "_clock", lambda: now[0])
    monkeypatch.setattr(sys, "stdout", _Tty())
    err = _Tty()
    with Progress(10, "search", stream=err, status="loading the data, preparing the teacher") as p:
        # said at once, before any step: what is happening, and since when
        assert err.getvalue() == "\rsearch 0/10 [------------------------]   0% 0:00 elapsed: " \
                                 "loading the data, preparing the teacher…\033[K"
        now[0] = 130.0
        assert p.text().endswith("0:30 elapsed: loading the data, preparing the teacher…")
        p.update(2, best=0.5)
        # 2 done in 30 s: 8 more take 2:00
        assert p.text() == "search 2/10 [####--------------------]  20% 0:30 elapsed, 2:00 left 0.07/s best 0.5"
        now[0] = 100.0 + 3725
        p.moveto(10)
        assert "1:02:05 elapsed" in p.text() and "left" not in p.text()
    assert err.getvalue().endswith("\n") and "2:00 left" in err.getvalue()
    # a round restarted by the caller (distill: bar.n = 0 each epoch) gets its own clock
    q = Progress(4, "epoch", stream=_Tty())
    q.update(4)
    now[0] += 50
    q.n = 0
    now[0] += 10
    q.update(1)
    assert "0:10 elapsed, 0:30 left" in q.text()
    q.close()


def test_the_clock_ticks_before_the_first_step(monkeypatch) -> None:
    import time

    import searchkd.progress as prog

    monkeypatch.setattr(prog, "_TICK", 0.01)
    monkeypatch.setattr(sys, "stdout", _Tty())
    err = _Tty()
    p = Progress(3, "scoring", stream=err)
    deadline = time.monotonic() + 5
    while err.getvalue().count("starting…") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert err.getvalue().count("starting…") >= 3  # redrawn while nothing is done yet
    p.update(1)
    p.close()
    drawn = err.getvalue()
    time.sleep(0.05)
    assert err.getvalue() == drawn  # stopped by the first step and close


def _statuses(monkeypatch, module, tmp_path) -> tuple[list, str]:
    """Every status a ``module.Progress`` is created with, and an 80-image npz data spec."""
    import numpy as np

    said = []

    class Recording(module.Progress):
        def __init__(self, *a, **kw) -> None:
            said.append(kw.get("status"))
            super().__init__(*a, **kw)

    monkeypatch.setattr(module, "Progress", Recording)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (80, 32, 32, 3), dtype=np.uint8), y=np.arange(80) % 10)
    return said, f"npz:{tmp_path / 'd.npz'}"


def test_scoring_says_what_it_prepares(tmp_path, monkeypatch) -> None:
    import searchkd.progress as prog
    from searchkd import api

    said, data = _statuses(monkeypatch, prog, tmp_path)
    cell = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    for proxies in (["params"], ["params", "diswot"]):
        api.score_archs("nb201", [cell], proxies, data=data, batch_size=16, progress=False)
    assert said == ["loading the data", "loading the data, preparing the teacher"]


def test_a_search_says_what_it_prepares(tmp_path, monkeypatch) -> None:
    import searchkd.orchestrate.driver as drv
    from searchkd import api

    said, data = _statuses(monkeypatch, drv, tmp_path)
    for i, proxy in enumerate(("params", "diswot")):
        api.search("nb201", proxy, "random", budget=2, data=data, batch_size=16, out=str(tmp_path / f"s{i}"),
                   progress=False)
    assert said == ["loading the data, first scores", "loading the data, preparing the teacher, first scores"]


def test_replayed_steps_do_not_count_toward_the_rate() -> None:
    """A resume replays its logged trials at once: the time left is from this run's own pace."""
    import searchkd.progress as prog

    now = [100.0]
    orig = prog._clock
    prog._clock = lambda: now[0]
    try:
        p = Progress(100, "search", enabled=False)
        p.replayed(50)
        p.moveto(50)
        now[0] += 10.0
        p.moveto(60)  # 10 new trials in 10 s: 40 left take 40 s
        assert "0:40 left" in p.text()
        assert "1.00/s" in p.text()
    finally:
        prog._clock = orig
