"""Choosing the students: top-K by proxy, the Pareto set, seeded controls; reading results."""

from __future__ import annotations

import json

import pytest

from searchkd.distill.select import fill_scores, pick_students, proxy_name, read_result
from searchkd.errors import SearchKDError
from searchkd.spaces import get_space

SPACE = get_space("resnet_cifar")


def _trials(scores: dict[str, float]) -> list[dict]:
    return [{"i": i, "arch": a, "scores": {"diswot": s}, "params": 0.1, "flops": 1.0, "seconds": 0.0}
            for i, (a, s) in enumerate(scores.items())]


def _result(**config: object) -> dict:
    return {"config": {"space": "resnet_cifar", "proxy": "diswot", **config}, "best": {}, "pareto": []}


def test_top_k_by_proxy_with_ties_and_duplicates() -> None:
    trials = _trials({"1-1-1": 0.5, "2-2-2": 0.9, "3-3-3": 0.9, "1-2-3": float("nan"), "4-4-4": 0.1})
    trials.append({"i": 5, "arch": "4-4-4", "scores": {"diswot": 0.95}})  # re-evaluated: best score counts
    students, how = pick_students(_result(), trials, SPACE, "diswot", top=3, controls=0)
    assert how == "top-k"
    assert [s.arch for s in students] == ["4-4-4", "2-2-2", "3-3-3"]  # tie → the earlier trial first
    assert [s.rank for s in students] == [1, 2, 3] and students[0].score == 0.95
    assert all(s.role == "top" for s in students)
    with pytest.raises(SearchKDError, match="only 5 distinct"):
        pick_students(_result(), trials, SPACE, "diswot", top=6, controls=0)
    for bad in (0, -1):
        with pytest.raises(SearchKDError, match="top"):
            pick_students(_result(), trials, SPACE, "diswot", top=bad, controls=0)


def test_pareto_front_of_a_multi_objective_search() -> None:
    trials = _trials({"1-1-1": 0.2, "2-2-2": 0.9, "3-3-3": 0.5, "5-5-5": 0.95})
    result = _result(objectives="diswot,params")
    result["pareto"] = [{"arch": "1-1-1"}, {"arch": "3-3-3"}, {"arch": "2-2-2"}]
    students, how = pick_students(result, trials, SPACE, "diswot", top=2, controls=0)
    assert how == "pareto" and [s.arch for s in students] == ["2-2-2", "3-3-3"]


def test_controls_are_seeded_distinct_and_extras_get_their_roles() -> None:
    trials = _trials({"1-1-1": 0.5, "2-2-2": 0.9})
    kw = dict(top=2, controls=5, seed=4, vanilla_best="3-3-3", include=["2-2-2", "1-2-1"])
    a, _ = pick_students(_result(), trials, SPACE, "diswot", **kw)
    b, _ = pick_students(_result(), trials, SPACE, "diswot", **kw)
    assert [s.arch for s in a] == [s.arch for s in b]
    assert len({s.arch for s in a}) == len(a) == 2 + 2 + 5  # 2-2-2 is already a top student
    assert [s.role for s in a[:4]] == ["top", "top", "vanilla-best", "include"]
    controls = [s for s in a if s.role == "control"]
    assert len(controls) == 5 and all(s.score is None for s in controls)
    c, _ = pick_students(_result(), trials, SPACE, "diswot", **{**kw, "seed": 5})
    assert [s.arch for s in c if s.role == "control"] != [s.arch for s in controls]
    fill_scores(controls, SPACE, {"space": "resnet_cifar"}, "params")
    assert all(s.score == SPACE.cost(s.arch)["params"] and s.score_source == "rescored" for s in controls)


def test_archs_of_another_space_are_refused() -> None:
    trials = [{"i": 0, "arch": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
               "scores": {"diswot": 1.0}}]
    with pytest.raises(SearchKDError, match="resnet_cifar"):
        pick_students(_result(), trials, SPACE, "diswot", top=1, controls=0)


def test_read_result_and_its_trials(tmp_path) -> None:
    with pytest.raises(SearchKDError, match="not found"):
        read_result(tmp_path / "result.json")
    (tmp_path / "result.json").write_text("{not json")
    with pytest.raises(SearchKDError, match="not a searchkd result"):
        read_result(tmp_path / "result.json")
    (tmp_path / "result.json").write_text(json.dumps(_result()))
    lines = [json.dumps(t) for t in _trials({"1-1-1": 0.5, "2-2-2": 0.9})]
    (tmp_path / "trials.jsonl").write_text("\n".join(lines) + '\n{"i": 2, "arch": "3-')  # cut by a kill
    result, trials = read_result(tmp_path)
    assert result["config"]["space"] == "resnet_cifar" and [t["arch"] for t in trials] == ["1-1-1", "2-2-2"]
    (tmp_path / "trials.jsonl").write_text(lines[0] + "\ngarbage\n" + lines[1] + "\n")
    with pytest.raises(SearchKDError, match="trials.jsonl:2"):
        read_result(tmp_path)


def test_proxy_name() -> None:
    trials = _trials({"1-1-1": 0.5})
    assert proxy_name({"proxy": "diswot"}, trials) == "diswot"
    assert proxy_name({"proxy": "diswot,synflow"}, trials) == "diswot"
    with pytest.raises(SearchKDError, match="no trial has a 'snip' score"):
        proxy_name({"proxy": "snip"}, trials)


def test_cost_shortcut_only_when_it_reproduces_the_search_scores(monkeypatch) -> None:
    import searchkd.evaluate

    calls = []

    class StubEvaluator:
        def __init__(self, config):
            calls.append(config)

        def __call__(self, archs):
            return [{"scores": {"flops": 7.0}} for _ in archs]

    monkeypatch.setattr(searchkd.evaluate, "Evaluator", StubEvaluator)
    trials = [{"i": 0, "arch": "1-1-1", "scores": {"flops": -SPACE.cost("1-1-1")["flops"]}}]  # not the cost
    students, _ = pick_students(_result(proxy="flops"), trials, SPACE, "flops", top=1, controls=1)
    assert fill_scores(students, SPACE, {"space": "resnet_cifar", "proxy": "flops", "seed": 3}, "flops") is None
    assert students[1].score == 7.0 and students[1].score_source == "rescored"
    assert calls[0].proxies == ("flops",) and calls[0].seed == 3 and calls[0].space == "resnet_cifar"

    class Broken(StubEvaluator):
        def __call__(self, archs):
            raise SearchKDError("unknown proxy 'flops'")

    monkeypatch.setattr(searchkd.evaluate, "Evaluator", Broken)
    students, _ = pick_students(_result(proxy="flops"), trials, SPACE, "flops", top=1, controls=1)
    note = fill_scores(students, SPACE, {"space": "resnet_cifar"}, "flops")
    assert students[1].score is None and "could not score" in note


def test_controls_respect_the_search_size_constraint() -> None:
    trials = _trials({"1-1-1": 0.5, "2-2-2": 0.9})
    students, _ = pick_students(_result(max_params=0.2), trials, SPACE, "diswot", top=1, controls=6, seed=1)
    controls = [s.arch for s in students if s.role == "control"]
    assert len(controls) == 6 and all(SPACE.cost(a)["params"] <= 0.2 for a in controls)
    free, _ = pick_students(_result(), trials, SPACE, "diswot", top=1, controls=6, seed=1)
    assert any(SPACE.cost(s.arch)["params"] > 0.2 for s in free if s.role == "control")


def test_a_rescored_student_gets_exactly_the_score_the_search_gave_it(tmp_path) -> None:
    from searchkd.distill.select import Student
    from searchkd.evaluate import EvalConfig, Evaluator
    from searchkd.orchestrate import run_search

    # proxy_seed differs from seed: the proxy batch and the students' init come from proxy_seed
    config = {"space": "resnet_cifar", "proxy": "nwot,diswot", "strategy": "random", "budget": 3, "seed": 0,
              "proxy_seed": 7, "teacher": "resnet_cifar:2-2-2", "batch_size": 16, "device": "cpu"}
    run_search(config, tmp_path, progress=False, plots=False)
    result, trials = read_result(tmp_path)
    for proxy in ("nwot", "diswot"):
        students = [Student(t["arch"], "control") for t in trials]  # as if the search had never scored them
        assert fill_scores(students, SPACE, result["config"], proxy) is None
        assert [s.score for s in students] == [t["scores"][proxy] for t in trials]
        assert all(s.score_source == "rescored" for s in students)
    # the test can tell: under the plain seed the scores differ
    plain = Evaluator(EvalConfig(space="resnet_cifar", proxies=("nwot",), teacher="resnet_cifar:2-2-2",
                                 batch_size=16, seed=0, device="cpu"))([trials[0]["arch"]])
    assert plain[0]["scores"]["nwot"] != trials[0]["scores"]["nwot"]
