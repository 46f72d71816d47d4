"""Real Ray (num_cpus=2), started once for the module: local and ray agree; sweeps run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

import _toy_search  # noqa: E402
from _toy_search import ToySpace, toy_factory  # noqa: E402

from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.orchestrate import run_search, run_sweep  # noqa: E402
from searchkd.orchestrate.ray_runner import RayRunner, connect, split_chunks  # noqa: E402
from searchkd.types import SearchConfig  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    import ray
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(_toy_search)  # workers cannot import the test helper
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def ray_down():
    """No Ray running during the test; the module's Ray is back after it."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


@pytest.mark.parametrize("strategy, proxy, objectives", [("evolution", "toy,neg", "proxy"), ("nsga2", "toy", "proxy,params")])
def test_local_and_ray_give_the_same_search(tmp_path, strategy, proxy, objectives):
    cfg = SearchConfig(space="toy", proxy=proxy, strategy=strategy, budget=72, seed=3, objectives=objectives)
    loc = run_search(cfg, tmp_path / "local", evaluator=toy_factory, space=ToySpace(), plots=False)
    ray_ = run_search(cfg, tmp_path / "ray", runner="ray", evaluator=toy_factory, space=ToySpace(), plots=False)
    assert ray_.best.arch == loc.best.arch
    assert [t.arch for t in ray_.pareto] == [t.arch for t in loc.pareto]
    assert (tmp_path / "ray" / "trials.jsonl").read_text() == (tmp_path / "local" / "trials.jsonl").read_text()


def test_a_failing_trial_is_reported(tmp_path):
    def bad():
        def ev(archs):
            raise SearchKDError("broken data")
        return ev

    cfg = SearchConfig(space="toy", proxy="toy", strategy="random", budget=8)
    with pytest.raises(SearchKDError, match="broken data"):
        run_search(cfg, tmp_path / "x", runner="ray", evaluator=bad, space=ToySpace(), plots=False, max_failures=0)


def test_a_trial_that_fails_once_is_retried(tmp_path):
    marker = tmp_path / "failed-once"

    def flaky():
        inner = toy_factory()

        def ev(archs):
            if not marker.exists():  # the first chunk evaluated anywhere fails, once
                marker.write_text("x")
                raise RuntimeError("worker lost")
            return inner(archs)
        return ev

    cfg = SearchConfig(space="toy", proxy="toy", strategy="evolution", budget=40, seed=1)
    loc = run_search(cfg, tmp_path / "local", evaluator=toy_factory, space=ToySpace(), plots=False)
    ray_ = run_search(cfg, tmp_path / "ray", runner="ray", evaluator=flaky, space=ToySpace(), plots=False, max_failures=1)
    assert marker.exists()
    assert ray_.best.arch == loc.best.arch
    assert (tmp_path / "ray" / "trials.jsonl").read_text() == (tmp_path / "local" / "trials.jsonl").read_text()


@pytest.mark.slow  # four searches: the heaviest of the module
def test_sweep_runs_each_search_as_a_trial(tmp_path, capsys):
    gt = tmp_path / "gt.csv"
    space = ToySpace()
    with open(gt, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "acc"])
        for v in range(6 ** 4):
            a = space.decode([v // 216, v // 36 % 6, v // 6 % 6, v % 6])
            w.writerow([a, 50 + _toy_search.toy_score(a)])
    toml = tmp_path / "sweep.toml"
    toml.write_text(f'out = "{tmp_path / "sw"}"\nground_truth = "{gt}"\ncolumn = "acc"\n'
                    '[search]\nspace = "toy"\nstrategy = "evolution"\n'
                    '[grid]\nproxy = ["toy", "toy,neg"]\nseed = [0, 1]\nbudget = [40]\n')
    rows = run_sweep(toml, evaluator_factory=_toy_search.toy_factory_for, space=ToySpace())
    assert len(rows) == 4 and all(r["error"] == "" for r in rows)
    assert all(r["acc"] == 50 + _toy_search.toy_score(r["best_arch"]) for r in rows)
    assert (tmp_path / "sw" / "summary.csv").exists()
    assert (tmp_path / "sw" / "proxy=toy_seed=0_budget=40" / "result.json").exists()
    assert "best_arch" in capsys.readouterr().out


def test_split_chunks_keeps_order():
    assert split_chunks(list("abcdefg"), 3) == [list("abc"), list("de"), list("fg")]
    assert split_chunks(list("ab"), 5) == [["a"], ["b"]]


@pytest.mark.slow  # stops and restarts Ray
def test_unreachable_address_is_a_one_line_error(ray_down):
    with pytest.raises(SearchKDError, match="cannot reach the Ray cluster") as e:
        connect("127.0.0.1:1")
    assert "\n" not in str(e.value)


@pytest.mark.slow  # starts, stops and restarts Ray
def test_a_setup_failure_shuts_down_the_ray_the_runner_started(ray_down, monkeypatch):
    import ray

    def broken():
        raise RuntimeError("no resources today")

    monkeypatch.setattr(ray, "cluster_resources", broken)  # fails after ray.init
    with pytest.raises(RuntimeError, match="no resources today"):
        RayRunner(toy_factory)
    assert not ray.is_initialized()


def test_a_setup_failure_leaves_the_callers_ray_running():
    import ray

    with pytest.raises(SearchKDError, match="GPUs"):
        RayRunner(toy_factory, gpus_per_trial=1000)
    assert ray.is_initialized()


def _trials_without_times(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow  # builds resnet56 on every worker
def test_the_real_evaluator_on_ray_workers_matches_a_local_run(tmp_path, monkeypatch, one_thread):
    # the workers get the EvaluatorFactory: they must find the data the driver named by a
    # path relative to its cwd, and rebuild the same teacher from its seed (one torch thread
    # here, as on a one-CPU trial, so that the sums run in the same order: bitwise equal)
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Path("data").mkdir()
    np.savez("data/tiny.npz", x=rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8), y=np.arange(16) % 10)
    # a tiny evolution, so the later asks depend on the scores the workers send back
    cfg = SearchConfig(space="resnet_cifar", proxy="diswot", strategy="evolution", budget=8, seed=1,
                       data="npz:data/tiny.npz", batch_size=8, device="cpu", ask_size=4,
                       options={"population": 4, "sample_size": 2})
    run_search(cfg, "local", plots=False, progress=False)
    run_search(cfg, "ray", runner="ray", plots=False, progress=False)
    loc, ray_ = (_trials_without_times(Path(d) / "trials.jsonl") for d in ("local", "ray"))
    assert len(loc) == 8 and len({r["arch"] for r in loc}) == 8
    assert ray_ == loc


def test_run_once_is_one_trial_on_a_worker_and_errors_stay_one_line():
    import os

    runner = RayRunner(toy_factory)
    try:
        value, pid = runner.run_once(_toy_search.square_pid, 7)
        assert value == 49 and pid != os.getpid()  # ran in a Tune trial, not here
        with pytest.raises(SearchKDError, match="^bad value 3$"):
            runner.run_once(_toy_search.refuse, 3)
    finally:
        runner.close()


def test_a_sweep_with_a_failed_search_exits_non_zero_one_line_each(tmp_path, capsys, monkeypatch):
    import functools

    import searchkd.orchestrate
    from searchkd.cli import main

    def factory_for(cfg):
        if cfg.seed == 1:
            def broken():
                def ev(archs):
                    raise SearchKDError("seed 1 cannot be scored")
                return ev
            return broken
        return _toy_search.toy_factory_for(cfg)

    monkeypatch.setattr(searchkd.orchestrate, "run_sweep",
                        functools.partial(run_sweep, evaluator_factory=factory_for, space=ToySpace()))
    toml = tmp_path / "sweep.toml"
    toml.write_text(f'out = "{tmp_path / "sw"}"\nmax_failures = 0\n[search]\nspace = "toy"\nproxy = "toy"\n'
                    'strategy = "random"\nbudget = 4\n[grid]\nseed = [0, 1]\n')
    assert main(["sweep", str(toml), "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["searchkd: error: search seed=1 failed: seed 1 cannot be scored",
                   "searchkd: error: 1 of 2 searches failed (a rerun redoes only those; --debug shows the tracebacks)"]
    assert (tmp_path / "sw" / "seed=0" / "result.json").exists()
    assert not (tmp_path / "sw" / "seed=1").exists()  # the failed start left nothing to block a rerun
