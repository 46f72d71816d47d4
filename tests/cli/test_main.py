from __future__ import annotations

import subprocess
import sys

import pytest

from searchkd.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "searchkd.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_and_version_do_not_import_torch_or_nni():
    code = ("import sys; from searchkd.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules, 'nni' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("False False")
    v = run("--version")
    assert v.returncode == 0 and v.stdout.startswith("searchkd ")


@pytest.mark.parametrize("what, expected", [("spaces", "nb201"), ("teachers", "resnet56")])
def test_list(capsys, what, expected):
    assert main(["list", what]) == 0
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["list", "frobs"], "invalid choice"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, fragment):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchkd: error: ") and fragment in err and err.count("\n") == 1


def test_bad_input_from_a_real_process_has_no_traceback():
    p = run("list", "frobs")
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1


def test_score_prints_a_table_and_writes_csv(tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert main(["score", "--space", "resnet_cifar", "--proxy", "diswot,capacity_gap", "--arch", "1-1-1", "2-1-1",
                 "--teacher", "resnet20", "--batch-size", "16", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["arch", "diswot", "capacity_gap", "params", "flops"]
    lines = out.read_text().splitlines()
    assert lines[0] == "arch,diswot,capacity_gap,params,flops" and len(lines) == 3


def test_score_archs_file_and_jsonl(tmp_path, capsys):
    import json

    f = tmp_path / "archs.txt"
    f.write_text("# two students\n1-1-1\n1-2-1\n")
    out = tmp_path / "s.jsonl"
    assert main(["score", "--space", "resnet_cifar", "--proxy", "diswot", "--archs-file", str(f),
                 "--batch-size", "8", "--out", str(out), "--quiet"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["arch"] for r in rows] == ["1-1-1", "1-2-1"]


def test_bench_correlation_writes_json_and_png(tmp_path, capsys):
    import json

    gt = tmp_path / "gt.csv"
    gt.write_text("arch,acc\n1-1-1,80\n2-2-2,85\n3-3-3,88\n1-3-1,82\n")
    out = tmp_path / "c.json"
    assert main(["bench", "correlation", "--space", "resnet_cifar", "--proxy", "capacity_gap,diswot",
                 "--teacher", "resnet56", "--ground-truth", str(gt), "--column", "acc", "--batch-size", "8",
                 "--out", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 4 and res["column"] == "acc" and set(res["proxies"]) == {"capacity_gap", "diswot"}
    # capacity_gap against resnet56 prefers larger students here: a perfect ranking
    assert res["proxies"]["capacity_gap"]["spearman"] == pytest.approx(1.0)
    assert out.with_suffix(".png").stat().st_size > 1000
    assert out.with_suffix(".scores.csv").read_text().splitlines()[0].startswith("arch,capacity_gap,diswot")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["score", "--space", "nb202", "--proxy", "diswot"], "unknown space 'nb202'; did you mean 'nb201'"),
        (["score", "--space", "nb201", "--proxy", "synflowx", "--sample", "1"], "unknown proxy 'synflowx'"),
        (["score", "--space", "nb201", "--proxy", "diswot", "--arch", "|none~0|+|none~0|"], "malformed cell"),
        (["score", "--space", "nb201", "--proxy", "diswot", "--teacher", "resnet99"], "unknown teacher 'resnet99'"),
        (["score", "--space", "nb201", "--proxy", "diswot", "--data", "npz:/nope.npz"], "not found"),
        (["score", "--space", "nb201", "--proxy", "diswot", "--archs-file", "/nope.txt"], "archs file not found"),
        (["score", "--space", "nb201", "--proxy", "diswot", "--out", "x.txt"], "--out must end in"),
        (["score", "--space", "nb201", "--proxy", "diswot", "--sample", "0"], "--sample must be positive"),
        (["bench", "correlation", "--space", "nb201", "--proxy", "diswot", "--ground-truth", "/nope.csv",
          "--column", "acc", "--out", "x.json"], "ground-truth file not found"),
    ],
)
def test_score_bad_input(capsys, args, fragment):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchkd: error: ") and fragment in err and err.count("\n") == 1


def test_teacher_auto_picks_by_the_capacity_gap(capsys):
    assert main(["score", "--space", "resnet_cifar", "--proxy", "capacity_gap", "--arch", "3-3-3", "--teacher", "auto",
                 "--teacher-candidates", "resnet20,resnet56,resnet110", "--max-params", "0.3", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("teacher: resnet56") and "2.5" in err
    assert main(["score", "--space", "resnet_cifar", "--proxy", "capacity_gap", "--teacher", "auto",
                 "--max-params", "0.3"]) == 2
    assert "--teacher-candidates" in capsys.readouterr().err
