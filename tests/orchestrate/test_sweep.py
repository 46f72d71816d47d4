"""Sweeps without a Ray cluster: the summary's objective, and one default for Ray retries."""

from __future__ import annotations

import inspect
import json
import math


import _toy_search
from _toy_search import ToySpace

from searchkd.orchestrate.sweep import MAX_FAILURES, _summary_row, _sweep_trial, best_objective, load_sweep
from searchkd.types import SearchConfig, SearchResult, Trial


def _trial(i: int, arch: str, a: float, b: float) -> Trial:
    return Trial(i=i, arch=arch, scores={"a": a, "b": b}, params=1.0, flops=1.0)


def test_objective_of_several_proxies_is_the_best_mean_rank() -> None:
    # ranks (1 = worst) of a: x 3, y 1, z 2; of b: x 2, y 3, z 1 → mean x 2.5, y 2, z 1.5
    history = [_trial(0, "x", 3.0, 20.0), _trial(1, "y", 1.0, 30.0), _trial(2, "z", 2.0, 10.0)]
    result = SearchResult(config={}, best=history[0], pareto=[], trials=3, seconds=0.0, history=history)
    assert best_objective(SearchConfig(proxy="a,b"), result) == 2.5
    assert best_objective(SearchConfig(proxy="b"), result) == 20.0


def test_objective_of_a_failed_proxy_or_no_best_is_empty() -> None:
    t = _trial(0, "x", -math.inf, 1.0)
    assert best_objective(SearchConfig(proxy="a"), SearchResult({}, t, [], 1, 0.0, history=[t])) is None
    assert best_objective(SearchConfig(proxy="a,b"), SearchResult({}, None, [], 0, 0.0)) is None


class _Reported:
    """A Tune result as the sweep reads it (``metrics``, ``error``)."""

    def __init__(self, metrics: dict) -> None:
        self.metrics, self.error = metrics, None


def test_summary_objective_of_a_multi_proxy_search_is_filled(tmp_path, monkeypatch) -> None:
    """The trial function's report, read back by the summary: the objective of ``toy,neg``
    (a mean rank, which no ``scores`` key holds) is the best's mean rank, not empty."""
    from ray import tune

    reports: list[dict] = []
    monkeypatch.setattr(tune, "report", reports.append)
    cfg = SearchConfig(space="toy", proxy="toy,neg", strategy="random", budget=30, seed=0)
    _sweep_trial({"name": "s"}, {"s": cfg.to_dict()}, str(tmp_path), 1, _toy_search.toy_factory_for, ToySpace())
    row = _summary_row("s", cfg, ["proxy"], _Reported(reports[0]))
    assert row["error"] == "" and row["best_arch"]
    trials = [json.loads(line) for line in (tmp_path / "s" / "trials.jsonl").read_text().splitlines()]
    from scipy.stats import rankdata

    mean = (rankdata([t["scores"]["toy"] for t in trials]) + rankdata([t["scores"]["neg"] for t in trials])) / 2
    assert row["objective"] == max(mean)  # the best is the top of the final ranking


def test_search_and_sweep_retry_a_failed_ray_trial_equally(tmp_path) -> None:
    from searchkd.orchestrate.driver import run_search
    from searchkd.orchestrate.ray_runner import RayRunner

    toml = tmp_path / "s.toml"
    toml.write_text('[search]\nspace = "nb201"\n[grid]\nseed = [0]\n')
    assert MAX_FAILURES == 2
    assert load_sweep(toml)["max_failures"] == MAX_FAILURES
    assert inspect.signature(run_search).parameters["max_failures"].default == MAX_FAILURES
    assert inspect.signature(RayRunner).parameters["max_failures"].default == MAX_FAILURES


def test_a_sweep_search_without_a_proxy_gets_its_strategys_own(tmp_path) -> None:
    """darts/sd-darts rank by their supernet (derived_acc), evolution by the space's default: as `searchkd search`."""
    toml = tmp_path / "s.toml"
    toml.write_text('[search]\nspace = "nb201"\nbudget = 2\n[grid]\nstrategy = ["darts", "sd-darts", "evolution"]\n')
    searches = load_sweep(toml)["searches"]
    proxies = {cfg.strategy: cfg.proxy for cfg in searches.values()}
    assert proxies == {"darts": "derived_acc", "sd-darts": "derived_acc", "evolution": "kd"}


def test_a_sweep_differentiable_search_without_data_trains_on_the_training_file(tmp_path) -> None:
    """As `searchkd search`: darts/sd-darts default to the shared CIFAR-10 training images."""
    from searchkd.api import default_data

    from tests.conftest import shared_file

    shared_file("images/cifar10_train_25k.npz")  # absent: a skip here, a failure under CI
    toml = tmp_path / "s.toml"
    toml.write_text('[search]\nspace = "nb201"\nbudget = 2\n[grid]\nstrategy = ["darts", "sd-darts", "evolution"]\n')
    searches = load_sweep(toml)["searches"]
    data = {cfg.strategy: cfg.data for cfg in searches.values()}
    assert data == {"darts": default_data("nb201", "darts"), "sd-darts": default_data("nb201", "darts"),
                    "evolution": "embedded"}


def test_a_sweep_applies_the_search_defaults_of_each_space(tmp_path) -> None:
    """As `searchkd search`: a bert-* search with no data or batch reads embedded-text with a SuperLM
    batch of 16; an image search keeps embedded images in batches of 64; a given batch is kept."""
    toml = tmp_path / "s.toml"
    toml.write_text('[search]\nbudget = 2\n[grid]\nspace = ["bert-tiny", "nb201"]\n')
    got = {cfg.space: (cfg.data, cfg.batch_size) for cfg in load_sweep(toml)["searches"].values()}
    assert got == {"bert-tiny": ("embedded-text", 16), "nb201": ("embedded", 64)}
    toml.write_text('[search]\nbudget = 2\nbatch_size = 8\n[grid]\nspace = ["bert-tiny", "nb201"]\n')
    assert {cfg.batch_size for cfg in load_sweep(toml)["searches"].values()} == {8}
