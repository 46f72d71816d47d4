"""Bad input is found before a search creates anything; a failed start leaves nothing behind."""

from __future__ import annotations

import os

import numpy as np
import pytest

from searchkd.cli import main
from searchkd.orchestrate.checks import StartGuard
from searchkd.orchestrate.driver import run_search

SEARCH = ["search", "--space", "resnet_cifar", "--proxy", "capacity_gap", "--strategy", "random", "--budget", "2",
          "--quiet"]


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, ds, fs in os.walk(root) for f in fs + ds)


@pytest.fixture
def tiny_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=np.zeros((20, 1, 1, 3), np.uint8), y=np.arange(20) % 2)
    return path


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--teacher", "nosuch"], "unknown teacher 'nosuch'"),
        (["--data", "npz:/nonexistent/x.npz"], "data path not found"),
        (["--data", "cifar77:/tmp"], "unknown data kind"),
        (["--batch-size", "0"], "batch size must be a positive integer"),
        (["--batch-size", "100000"], "exceeds the 1797 images"),
        (["--teacher-weights", "/nonexistent/w.pt"], "teacher weights file not found"),
        (["--teacher-weights", "/etc/hostname"], "cannot read weights"),
        (["--max-params", "inf"], "finite"),
        (["--max-params", "nan"], "finite"),
        (["--seed", "-1"], "non-negative integer"),
        (["--device", "cuda"], "CUDA"),
        (["--data", "npz:TINY", "--batch-size", "8", "--space", "nb201", "--proxy", "synflow"], "cannot run on 1×1 images"),
    ],
)
@pytest.mark.parametrize("existing", [False, True])
def test_bad_search_input_creates_nothing(tmp_path, capsys, tiny_npz, extra, fragment, existing):
    if extra == ["--device", "cuda"]:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    if existing:  # an empty directory the user made stays as it was
        out.mkdir()
    before = _tree(tmp_path)
    extra = [f"npz:{tiny_npz}" if a == "npz:TINY" else a for a in extra]
    assert main([*SEARCH, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchkd: error: ") and err.count("\n") == 1 and fragment in err, err
    assert _tree(tmp_path) == before


def test_the_corrected_command_runs_after_a_failed_one(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main([*SEARCH, "--out", out, "--teacher", "resnet5"]) == 2
    assert main([*SEARCH, "--out", out, "--teacher", "resnet56"]) == 0
    assert "best " in capsys.readouterr().out


def _failing_evaluator():
    def evaluate(archs):
        raise RuntimeError("a worker's failure")

    return evaluate


def test_a_start_that_fails_later_removes_what_it_created(tmp_path):
    out = tmp_path / "a" / "out"
    with pytest.raises(RuntimeError, match="worker's failure"):
        run_search({"space": "resnet_cifar", "proxy": "params", "strategy": "random", "budget": 3}, out,
                   evaluator=_failing_evaluator)
    assert not out.exists()


def test_the_guard_keeps_logged_trials_and_a_resumed_search(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "trials.jsonl").write_text("")
    with pytest.raises(RuntimeError), StartGuard(out, fresh=False):
        raise RuntimeError("resumed: nothing removed")
    assert sorted(os.listdir(out)) == ["config.json", "trials.jsonl"]
    other = tmp_path / "other"
    with pytest.raises(RuntimeError), StartGuard(other, fresh=True):
        other.mkdir()
        (other / "config.json").write_text("{}")
        (other / "trials.jsonl").write_text('{"i": 0}\n')
        raise RuntimeError("a trial was logged: kept")
    assert sorted(os.listdir(other)) == ["config.json", "trials.jsonl"]


def test_a_sweep_checks_every_search_before_ray(tmp_path, capsys):
    toml = tmp_path / "s.toml"
    toml.write_text(f'out = "{tmp_path / "sweep"}"\n[search]\nspace = "resnet_cifar"\nstrategy = "random"\n'
                    '[grid]\nproxy = ["params"]\nbudget = [2]\nteacher = ["resnet56", "resnet57"]\n')
    assert main(["sweep", str(toml)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "teacher=resnet57" in err and "unknown teacher 'resnet57'" in err
    assert not (tmp_path / "sweep").exists()


def _nonfinite_evaluator():
    def evaluate(archs):
        return [{"arch": a, "scores": {"params": float("-inf")}, "params": 1.0, "flops": 1.0} for a in archs]

    return evaluate


def test_a_search_where_every_score_is_non_finite_has_no_best(tmp_path):
    import json

    out = tmp_path / "out"
    res = run_search({"space": "resnet_cifar", "proxy": "params", "strategy": "random", "budget": 3}, out,
                     evaluator=_nonfinite_evaluator)
    assert res.best is None and res.pareto == [] and res.all_nonfinite and res.trials == 3
    text = (out / "result.json").read_text()
    d = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert d["best"] is None and d["all_nonfinite"] is True and "inf" not in text.lower()
    assert not (out / "pareto.png").exists()  # no empty plots
    line = json.loads((out / "trials.jsonl").read_text().splitlines()[0])
    assert line["scores"] == {"params": None}


def test_the_cli_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    import searchkd.api
    from searchkd.types import SearchResult

    monkeypatch.setattr(searchkd.api, "search", lambda **k: SearchResult({}, None, [], 5, 0.0, all_nonfinite=True))
    assert main([*SEARCH, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "every score was non-finite" in err
