"""Real Ray (num_cpus=2), started once for the module: local and ray agree; sweeps run."""

from __future__ import annotations

import csv

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

import _toy_search  # noqa: E402
from _toy_search import ToySpace, toy_factory  # noqa: E402

from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.orchestrate import run_search, run_sweep  # noqa: E402
from searchkd.orchestrate.ray_runner import connect, split_chunks  # noqa: E402
from searchkd.types import SearchConfig  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    import ray
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(_toy_search)  # workers cannot import the test helper
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


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


def test_unreachable_address_is_a_one_line_error():
    import ray

    ray.shutdown()
    try:
        with pytest.raises(SearchKDError, match="cannot reach the Ray cluster") as e:
            connect("127.0.0.1:1")
        assert "\n" not in str(e.value)
    finally:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
