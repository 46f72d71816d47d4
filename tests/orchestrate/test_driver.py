from __future__ import annotations

import json

import pytest
from _toy_search import OPTIMUM, CountingEvaluator, ToySpace, toy_record

from searchkd.errors import SearchKDError
from searchkd.orchestrate import run_search
from searchkd.orchestrate.driver import prepare
from searchkd.types import SearchConfig, SearchResult


def search(tmp_path, name="run", ev=None, space=None, **kw):
    ev = ev or CountingEvaluator()
    kw.setdefault("space", "toy")
    kw.setdefault("proxy", "toy")
    cfg = SearchConfig(**kw)
    r = run_search(cfg, tmp_path / name, evaluator=lambda: ev, space=space or ToySpace(), plots=False)
    return r, ev


@pytest.mark.parametrize("strategy", ["random", "evolution", "nsga2"])
def test_no_arch_is_evaluated_twice_and_budget_counts_distinct(tmp_path, strategy):
    r, ev = search(tmp_path, strategy=strategy, budget=120)
    assert len(ev.calls) == len(set(ev.calls)) == 120 == r.trials
    lines = (tmp_path / "run" / "trials.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [x["i"] for x in recs] == list(range(120))
    assert set(recs[0]) == {"i", "arch", "scores", "params", "flops", "seconds"}


def test_evolution_finds_the_optimum_through_the_driver(tmp_path):
    r, _ = search(tmp_path, strategy="evolution", budget=300)
    assert r.best.arch == OPTIMUM


def test_terminates_when_the_space_is_exhausted(tmp_path):
    small = ToySpace(n=2, k=3)  # 9 archs
    for strategy in ("random", "evolution", "nsga2"):
        r, ev = search(tmp_path, name=strategy, strategy=strategy, budget=50, space=small)
        assert r.trials == 9 and len(ev.calls) == 9


def test_max_params_makes_archs_infeasible_without_evaluating_them(tmp_path):
    space = ToySpace()
    r, ev = search(tmp_path, strategy="evolution", budget=100, max_params=0.15)
    assert all(space.cost(a)["params"] <= 0.15 + 1e-12 for a in ev.calls)
    assert r.best.params <= 0.15 + 1e-12


def test_max_params_below_the_smallest_arch_is_bad_input(tmp_path):
    with pytest.raises(SearchKDError, match="smallest"):
        search(tmp_path, strategy="evolution", budget=10, max_params=0.05)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kw, match", [
    ({"budget": 0}, "budget"),
    ({"budget": -3}, "budget"),
    ({"strategy": "evolutoin"}, "did you mean 'evolution'"),
    ({"objectives": ("proxy", "params")}, "nsga2"),
    ({"objectives": ("accuracy",)}, "unknown objective"),
    ({"options": {"populaton": 3}}, "bad option"),
    ({"ask_size": 0}, "ask_size"),
])
def test_bad_input_is_a_searchkd_error(tmp_path, kw, match):
    kw.setdefault("strategy", "evolution")
    with pytest.raises(SearchKDError, match=match):
        search(tmp_path, **kw)
    assert not (tmp_path / "run").exists()


def test_unknown_proxy_is_refused_by_the_registry():
    with pytest.raises(SearchKDError, match="unknown proxy"):
        prepare(SearchConfig(space="nb201", proxy="synfloww", budget=5))


def test_an_existing_search_is_never_overwritten(tmp_path):
    search(tmp_path, strategy="random", budget=10)
    before = (tmp_path / "run" / "trials.jsonl").read_bytes()
    with pytest.raises(SearchKDError, match="already holds a search"):
        search(tmp_path, strategy="random", budget=10)
    assert (tmp_path / "run" / "trials.jsonl").read_bytes() == before


def test_combined_rank_objective(tmp_path):
    r, _ = search(tmp_path, proxy="toy,neg", strategy="evolution", budget=60)
    # the best under the final mean rank is the top of a brute-force ranking of the log
    from scipy.stats import rankdata

    recs = [json.loads(x) for x in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    mean = (rankdata([x["scores"]["toy"] for x in recs]) + rankdata([x["scores"]["neg"] for x in recs])) / 2
    top = max(range(len(recs)), key=lambda i: (mean[i], -i))
    assert r.best.arch == recs[top]["arch"]


def test_two_objectives_pareto_is_non_dominated(tmp_path):
    r, _ = search(tmp_path, strategy="nsga2", objectives="proxy,params", budget=150)
    pts = {t.arch: (t.scores["toy"], -t.params) for t in r.pareto}
    for p in pts.values():
        for q in pts.values():
            assert not (all(a >= b for a, b in zip(q, p)) and any(a > b for a, b in zip(q, p)))
    # no evaluated arch dominates a front member
    for t in r.history:
        v = (t.scores["toy"], -t.params)
        assert not any(all(a >= b for a, b in zip(v, p)) and any(a > b for a, b in zip(v, p)) for p in pts.values())


def test_result_json_round_trips(tmp_path):
    ev = CountingEvaluator()
    cfg = SearchConfig(space="toy", proxy="toy", strategy="evolution", budget=40)
    r = run_search(cfg, tmp_path / "run", evaluator=lambda: ev, space=ToySpace(), plots=True)
    loaded = SearchResult.from_json(tmp_path / "run" / "result.json")
    assert loaded.to_dict() == r.to_dict()
    d = json.loads((tmp_path / "run" / "result.json").read_text())
    assert set(d) == {"searchkd_version", "config", "best", "pareto", "trials", "seconds"}
    assert set(d["best"]) == {"arch", "scores", "params", "flops"}
    assert SearchConfig.from_dict(d["config"]).strategy == "evolution"
    for png in ("pareto.png", "trajectory.png"):
        assert (tmp_path / "run" / png).stat().st_size > 1000


def test_failed_proxy_scores_survive_json(tmp_path):
    def ev():
        return lambda archs: [{**toy_record(a), "scores": {"toy": float("-inf") if a.startswith("0") else 1.0}}
                              for a in archs]

    cfg = SearchConfig(space="toy", proxy="toy", strategy="random", budget=60)
    r = run_search(cfg, tmp_path / "run", evaluator=ev, space=ToySpace(), plots=False)
    assert not r.best.arch.startswith("0")
    text = (tmp_path / "run" / "trials.jsonl").read_text()
    assert "inf" not in text and "NaN" not in text  # strict JSON: null, ranked worst on reading
    assert any(json.loads(x)["scores"]["toy"] is None for x in text.splitlines())
    again = run_search(cfg, tmp_path / "run", evaluator=ev, space=ToySpace(), plots=False, resume=True)
    assert again.best.arch == r.best.arch


def test_progress_is_silent_off_a_terminal(tmp_path, capsys):
    search(tmp_path, strategy="random", budget=10)
    assert capsys.readouterr().err == ""


def test_local_runner_does_not_import_ray(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parents[1] / 'strategies')!r})\n"
            "from _toy_search import *\nfrom searchkd.orchestrate import run_search\nfrom searchkd.types import SearchConfig\n"
            f"run_search(SearchConfig(space='toy', proxy='toy', strategy='evolution', budget=20), {str(tmp_path / 'x')!r},"
            " evaluator=toy_factory, space=ToySpace(), plots=False)\nprint('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("strategy", ["evolution", "random", "nsga2"])
def test_budget_is_honoured_after_the_search_converges(tmp_path, strategy):
    # 1,000 of the 1,296 toy archs: evolution converges long before, and must keep going
    r, ev = search(tmp_path, strategy=strategy, budget=1000)
    assert r.trials == len(set(ev.calls)) == 1000


class ShuffledEvaluator(CountingEvaluator):
    def __init__(self, drop: bool = False, extra: bool = False) -> None:
        super().__init__()
        self.drop, self.extra = drop, extra

    def __call__(self, archs):
        recs = super().__call__(archs)[::-1]
        if self.drop:
            recs = recs[1:]
        if self.extra:
            recs.append(toy_record("0-0-0-0" if archs[0] != "0-0-0-0" else "5-5-5-5"))
        return recs


def test_records_are_paired_with_archs_by_arch_not_position(tmp_path):
    r1, _ = search(tmp_path, name="plain", strategy="evolution", budget=60)
    r2, _ = search(tmp_path, name="shuffled", ev=ShuffledEvaluator(), strategy="evolution", budget=60)
    lines = [(tmp_path / n / "trials.jsonl").read_text().splitlines() for n in ("plain", "shuffled")]
    strip = [[{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in ls] for ls in lines]
    assert strip[0] == strip[1] and all(t["scores"]["toy"] == toy_record(t["arch"])["scores"]["toy"] for t in strip[1])


@pytest.mark.parametrize("kw", [{"drop": True}, {"extra": True}])
def test_a_missing_or_extra_record_is_an_error(tmp_path, kw):
    with pytest.raises(SearchKDError, match="do not match the archs asked"):
        search(tmp_path, ev=ShuffledEvaluator(**kw), strategy="random", budget=20)
