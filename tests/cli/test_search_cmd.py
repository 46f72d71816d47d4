from __future__ import annotations

import json

import pytest

import searchkd
from searchkd.cli import main


def test_search_then_resume_then_distill(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["search", "--space", "resnet_cifar", "--proxy", "capacity_gap", "--strategy", "evolution", "--budget", "6",
            "--teacher", "resnet_cifar:2-1-1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("best ") and (out / "trials.jsonl").exists() and (out / "trajectory.png").exists()
    res = searchkd.load_result(str(out / "result.json"))
    assert res.trials == 6 and res.config["teacher"] == "resnet_cifar:2-1-1"
    assert len((out / "trials.jsonl").read_text().splitlines()) == 6
    # a finished search resumes to the same result; without --resume the directory is refused
    assert main(args + ["--resume"]) == 0
    assert searchkd.load_result(str(out)).best.arch == res.best.arch
    assert main(args) == 2
    assert "resume" in capsys.readouterr().err
    # distil the top student and one control, teacher trained for one epoch
    assert main(["distill", "--result", str(out / "result.json"), "--top", "1", "--controls", "1", "--epochs", "1",
                 "--train-teacher", "1", "--batch-size", "64", "--quiet"]) == 0
    rep = json.loads((out / "verify.json").read_text())
    assert {s["role"] for s in rep["students"]} >= {"top", "control"}
    assert all(0 <= s["kd_accuracy"] <= 100 for s in rep["students"])
    assert (out / "teacher.pt").exists()


def test_python_search_api_matches_the_cli(tmp_path, capsys):
    res = searchkd.search(space="resnet_cifar", proxy="capacity_gap", strategy="random", budget=5, seed=3,
                          teacher="resnet56")
    assert main(["search", "--space", "resnet_cifar", "--proxy", "capacity_gap", "--strategy", "random",
                 "--budget", "5", "--seed", "3", "--teacher", "resnet56", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert searchkd.load_result(str(tmp_path / "r")).best.arch == res.best.arch


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["search", "--budget", "0", "--out", "OUT"], "budget must be a positive"),
        (["search", "--strategy", "annealing", "--out", "OUT"], "unknown strategy 'annealing'"),
        (["search", "--strategy", "evolution", "--objectives", "proxy,params", "--out", "OUT"], "objective"),
        (["search", "--max-params", "0.01", "--out", "OUT"], "below the smallest architecture"),
        (["search", "--ray-address", "auto", "--out", "OUT"], "--ray-address needs --runner ray"),
        (["distill", "--result", "/nope/result.json"], "not found"),
        (["sweep", "/nope.toml"], "nope.toml"),
    ],
)
def test_bad_input(tmp_path, capsys, args, fragment):
    args = [str(tmp_path / "o") if a == "OUT" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchkd: error: ") and fragment in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
