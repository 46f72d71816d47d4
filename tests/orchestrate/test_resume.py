"""A killed search resumed from trials.jsonl ends with the same best arch as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _toy_search import CountingEvaluator, ToySpace

from searchkd.errors import SearchKDError
from searchkd.orchestrate import run_search
from searchkd.types import SearchConfig

STRATEGIES = ["random", "evolution", "nsga2"]


def cfg(strategy, **kw):
    kw.setdefault("budget", 90)
    kw.setdefault("proxy", "toy,neg" if strategy == "evolution" else "toy")
    return SearchConfig(space="toy", strategy=strategy, seed=7, **kw)


def run(out, config, resume=False, ev=None):
    ev = ev or CountingEvaluator()
    r = run_search(config, out, resume=resume, evaluator=lambda: ev, space=ToySpace(), plots=False)
    return r, ev


def lines(out):
    return (Path(out) / "trials.jsonl").read_text().splitlines()


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("cut", ["mid-line", "after-k-lines", "empty"])
def test_resume_after_a_simulated_kill(tmp_path, strategy, cut):
    full, _ = run(tmp_path / "full", cfg(strategy))
    out = tmp_path / "killed"
    run(out, cfg(strategy))
    log = out / "trials.jsonl"
    data = log.read_bytes()
    k = 37
    keep = b"".join(x + b"\n" for x in data.split(b"\n")[:k])
    if cut == "mid-line":
        keep += data.split(b"\n")[k][:25]
    elif cut == "empty":
        keep = b""
    log.write_bytes(keep)
    (out / "result.json").unlink()
    r, ev = run(out, cfg(strategy), resume=True)
    assert r.best.arch == full.best.arch
    assert r.trials == full.trials
    assert len(ev.calls) == full.trials - (0 if cut == "empty" else k)  # nothing logged is evaluated again
    assert lines(out) == lines(tmp_path / "full")


def test_resume_with_a_larger_budget_extends_the_search(tmp_path):
    run(tmp_path / "a", cfg("evolution", budget=60))
    r, ev = run(tmp_path / "a", cfg("evolution", budget=120), resume=True)
    full, _ = run(tmp_path / "b", cfg("evolution", budget=120))
    assert r.best.arch == full.best.arch and len(ev.calls) == 60
    assert lines(tmp_path / "a") == lines(tmp_path / "b")


def test_a_corrupt_line_that_is_not_the_last_is_refused(tmp_path):
    run(tmp_path / "a", cfg("random"))
    log = tmp_path / "a" / "trials.jsonl"
    ls = log.read_text().splitlines()
    ls[5] = ls[5][:20]
    log.write_text("\n".join(ls) + "\n")
    before = log.read_bytes()
    with pytest.raises(SearchKDError, match="corrupt .*line 6"):
        run(tmp_path / "a", cfg("random"), resume=True)
    assert log.read_bytes() == before


def test_a_different_config_is_refused(tmp_path):
    run(tmp_path / "a", cfg("random"))
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    with pytest.raises(SearchKDError, match="different config .*seed"):
        run(tmp_path / "a", SearchConfig(space="toy", strategy="random", proxy="toy", seed=8, budget=90), resume=True)
    with pytest.raises(SearchKDError, match="more than budget"):
        run(tmp_path / "a", cfg("random", budget=10), resume=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == before


def test_resume_of_a_finished_search_evaluates_nothing(tmp_path):
    first, _ = run(tmp_path / "a", cfg("nsga2"))
    again, ev = run(tmp_path / "a", cfg("nsga2"), resume=True)
    assert ev.calls == [] and again.best.arch == first.best.arch


SCRIPT = """
import sys, time
sys.path.insert(0, {toy!r})
from _toy_search import CountingEvaluator, ToySpace
from searchkd.orchestrate import run_search
from searchkd.types import SearchConfig
class Slow(CountingEvaluator):
    def __call__(self, archs):
        time.sleep({delay})
        return super().__call__(archs)
run_search(SearchConfig(space="toy", proxy="toy,neg", strategy="evolution", seed=7, budget=90, ask_size=4),
           {out!r}, resume=True, evaluator=Slow, space=ToySpace(), plots=False)
"""


def test_resume_after_sigkill(tmp_path):
    toy = str(Path(__file__).resolve().parents[1] / "strategies")
    full, _ = run(tmp_path / "full", SearchConfig(space="toy", proxy="toy,neg", strategy="evolution", seed=7,
                                                  budget=90, ask_size=4))
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(toy=toy, out=str(out), delay=0.05)], env=env)
    log = out / "trials.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_bytes().splitlines()) < 20):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(log.read_bytes().splitlines())
    assert 20 <= n_before < 90
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(toy=toy, out=str(out), delay=0)], env=env, timeout=120)
    assert proc.returncode == 0
    r = json.loads((out / "result.json").read_text())
    assert r["best"]["arch"] == full.best.arch and r["trials"] == 90
