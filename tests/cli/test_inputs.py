"""Issue 23: inputs a new user tried that ran and gave a wrong result, or said something
misleading. Each is one line ``searchkd: error: …`` and exit 2 now (or the documented behaviour)."""

from __future__ import annotations

import argparse

import pytest

from searchkd.cli import build_parser, main


def _float_flags() -> list[tuple[list[str], str]]:
    """(command words, flag) for every option of every command that takes a real number."""
    found = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, p in action.choices.items():
                    walk(p, [*words, name])
            elif getattr(action.type, "__name__", "") in ("float", "finite number") and action.option_strings:
                found.append((words, action.option_strings[-1]))

    walk(build_parser(), [])
    return found


FLOAT_FLAGS = _float_flags()


def test_the_float_flags_are_found():
    flags = {f for _, f in FLOAT_FLAGS}
    assert {"--sd-weight", "--max-params", "--kd-weight", "--lr", "--cpus-per-trial"} <= flags, flags


@pytest.mark.parametrize("words, flag", FLOAT_FLAGS, ids=[" ".join([*w, f]) for w, f in FLOAT_FLAGS])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_no_float_flag_takes_nan_or_inf(capsys, words, flag, value):
    rc = main([*words, f"{flag}={value}"])
    err = capsys.readouterr().err
    assert rc == 2 and "finite number" in err and err.count("\n") == 1, err


def test_acm_budgets_refuse_nan(capsys):
    assert main(["acm", "--budgets", "0.5,nan", "--out", "x"]) == 2
    assert "finite numbers" in capsys.readouterr().err


@pytest.mark.parametrize("args, fragment", [
    (["--strategy", "sd-darts", "--supernet-width", "0"], "--supernet-width must be a positive integer"),
    (["--strategy", "darts", "--supernet-cells", "0"], "--supernet-cells must be a positive integer"),
    (["--strategy", "sd-darts", "--images", "0"], "--images must be a positive integer"),
    (["--strategy", "darts", "--sd-teachers", "3"], "--sd-teachers sets the self-distillation term"),
    (["--strategy", "darts", "--sd-voting", "hard"], "--sd-voting sets the self-distillation term"),
    (["--strategy", "sd-darts", "--kd-weight", "2"], "this search has no --teacher"),
    (["--strategy", "evolution", "--supernet-steps", "5"], "nb201 has no SuperLM"),
    (["--strategy", "random", "--proxy", "params", "--column", "acc"], "there is no --ground-truth"),
    (["--strategy", "random", "--proxy", "params", "--dataset", "cifar100"], "there is no --ground-truth"),
    (["--strategy", "random", "--proxy", "params", "--cpus-per-trial", "4"], "runs locally"),
    (["--strategy", "random", "--proxy", "params", "--teacher-candidates", "resnet20,resnet56"], "not auto"),
    (["--strategy", "random", "--proxy", "params", "--teacher-weights", "/etc/hostname"], "no proxy of this search"),
])
def test_a_search_flag_that_would_be_ignored_or_replaced_is_refused(capsys, tmp_path, args, fragment):
    out = tmp_path / "out"
    rc = main(["search", "--space", "nb201", "--budget", "2", *args, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and err.count("\n") == 1, err
    assert not out.exists()


def test_score_refuses_max_params_without_teacher_auto(capsys):
    rc = main(["score", "--space", "resnet_cifar", "--proxy", "params", "--arch", "1-1-1", "--max-params", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and "--max-params is the student budget" in err, err


@pytest.mark.parametrize("kw, fragment", [
    ({"strategy": "darts", "options": {"width": 0}}, "--supernet-width must be a positive integer"),
    ({"strategy": "sd-darts", "options": {"sd_weight": float("nan")}}, "--sd-weight must be a finite number"),
    ({"strategy": "darts", "options": {"sd_teachers": 3}}, "plain darts has none"),
    ({"strategy": "evolution", "proxy": "params", "supernet_steps": 5}, "has no SuperLM"),
    ({"strategy": "random", "proxy": "params", "max_params": float("inf")}, "finite"),
])
def test_the_api_refuses_the_same(tmp_path, kw, fragment):
    import searchkd
    from searchkd.errors import SearchKDError

    with pytest.raises(SearchKDError, match=fragment):
        searchkd.search(space="nb201", budget=2, out=str(tmp_path / "o"), progress=False, **kw)
    assert not (tmp_path / "o").exists()


def test_a_run_whose_loss_turns_non_finite_stops_in_one_line(tmp_path, capsys):
    """A darts run that diverges (a learning rate of 1e30) stops with one line, exit 2, and
    reports no best cell (it used to train on to chance and report one)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strategies"))
    from _darts_tiny import TINY

    import searchkd
    from searchkd.errors import SearchKDError, check_finite_loss

    with pytest.raises(SearchKDError, match="became nan"):
        check_finite_loss(float("nan"), "x")
    cfg = {**TINY, "options": {**TINY["options"], "w_lr": 1e30, "w_lr_min": 1e30}}
    with pytest.raises(SearchKDError, match="diverged"):
        searchkd.search(strategy="darts", budget=2, out=str(tmp_path / "d"), progress=False, **cfg)
    assert not (tmp_path / "d" / "result.json").exists()


def test_a_batch_scored_by_the_superlm_charges_each_arch_its_share():
    """trials.jsonl's seconds: the SuperLM scores a batch at once; its time was charged to the
    first arch alone (7.1 s, then 8e-06 …), now each gets an equal share."""
    import time
    from types import SimpleNamespace

    from searchkd.evaluate.text import TextScorer
    from searchkd.spaces import get_space

    class SlowLM:
        def score_many(self, archs, ids, mask):
            time.sleep(0.4)
            return [1.0] * len(archs)

    scorer = object.__new__(TextScorer)
    scorer.config, scorer.space, scorer.lm = SimpleNamespace(proxies=("superlm",)), get_space("bert-tiny"), SlowLM()
    scorer.held, scorer.seconds, scorer.nonfinite = (None, None), {}, {}
    archs = ["L4-H128-A7-R2.0", "L5-H128-A7-R2.0", "L6-H128-A7-R2.0", "L7-H128-A7-R2.0"]
    secs = [r["seconds"] for r in scorer.score_archs(archs)]
    assert all(0.09 < s < 0.2 for s in secs), secs


def test_an_evolution_whose_budget_leaves_no_evolution_step_says_so(tmp_path, capsys):
    import json

    rc = main(["search", "--space", "resnet_cifar", "--proxy", "params", "--strategy", "evolution", "--budget", "6",
               "--out", str(tmp_path / "a"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0 and err.startswith("searchkd: warning: evolution: --budget 6 is not above the population (36)"), err
    assert err.count("\n") == 1
    notes = json.loads((tmp_path / "a" / "result.json").read_text())["notes"]
    assert len(notes) == 1 and "no evolution step ran" in notes[0]
    import searchkd

    r = searchkd.search(space="resnet_cifar", proxy="params", strategy="evolution", budget=6, out=str(tmp_path / "b"),
                        options={"population": 3}, progress=False)
    assert r.notes == [] and "notes" not in json.loads((tmp_path / "b" / "result.json").read_text())
    assert searchkd.load_result(str(tmp_path / "a")).notes == notes


def test_score_takes_the_supernet_the_superlm_proxy_needs(tmp_path, capsys):
    """`score --proxy superlm` asked for `--supernet DIR`, which score did not have: it takes it now
    and gives the search's own scores; a SuperLM of another split is refused."""
    import json

    import searchkd
    from tests._text import write_text_setup

    teacher, prose = write_text_setup(tmp_path, paragraphs=40)
    out = tmp_path / "run"
    searchkd.search(space="bert-tiny", strategy="autodistil", budget=3, teacher=f"hf:{teacher}", data=f"text:{prose}",
                    batch_size=4, supernet_steps=2, device="cpu", out=str(out), progress=False)
    capsys.readouterr()
    trials = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    base = ["score", "--space", "bert-tiny", "--proxy", "superlm", "--teacher", f"hf:{teacher}", "--data",
            f"text:{prose}", "--batch-size", "4", "--device", "cpu", "--quiet", "--arch", *(t["arch"] for t in trials)]
    assert main([*base, "--out", str(tmp_path / "s.jsonl"), "--supernet", str(out / "supernet")]) == 0, \
        capsys.readouterr().err
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["superlm"] for r in rows] == pytest.approx([t["scores"]["superlm"] for t in trials], rel=1e-5)
    capsys.readouterr()
    assert main(base) == 2
    assert "--supernet DIR" in capsys.readouterr().err
    assert main([*base, "--supernet", str(out / "supernet"), "--seed", "1"]) == 2
    assert "another train/held-out split" in capsys.readouterr().err
    assert main([*base[:4], "params", *base[5:], "--supernet", str(out / "supernet")]) == 2
    assert "no proxy here uses it" in capsys.readouterr().err


def test_superlm_training_settings_beside_a_reused_supernet_are_refused():
    from searchkd.errors import SearchKDError
    from searchkd.orchestrate.applicable import check_applicable
    from searchkd.types import SearchConfig

    for kw in ({"supernet_steps": 5}, {"supernet_lr": 1e-3}):
        with pytest.raises(SearchKDError, match="reuses one already trained"):
            check_applicable(SearchConfig(space="bert-tiny", proxy="superlm", strategy="autodistil", supernet="/x", **kw))
    with pytest.raises(SearchKDError, match="--supernet-lr must be a finite number"):
        check_applicable(SearchConfig(space="bert-tiny", proxy="superlm", strategy="autodistil",
                                      supernet_lr=float("nan")))
    check_applicable(SearchConfig(space="bert-tiny", proxy="superlm", strategy="autodistil", supernet_steps=5))


@pytest.mark.parametrize("argv, fragment", [
    (["acm", "--model", "minilm-l6", "--task-steps", "5", "--out", "{out}"], "--task-steps sets"),
])
def test_task_settings_without_a_task_are_refused(capsys, tmp_path, argv, fragment):
    rc = main([a.format(out=tmp_path / "o") for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()
