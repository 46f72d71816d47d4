"""benchmarks/bert_superlm_lr.py: the SuperLM lr chosen by the students' mean validation accuracy."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bert_superlm_lr import combine, main  # noqa: E402


def _report(role, accs):
    return {"rows": [{"role": role, "arch": a, "lr": 1e-3, "val_accuracy": v} for a, v in accs.items()]}


def test_the_lr_with_the_best_mean_over_students_is_chosen_not_the_best_single_row():
    by_lr = {"1e-3": _report("student", {"small": .60, "big": .90}),  # best single row, mean .75
             "2e-4": _report("student", {"small": .74, "big": .80})}  # mean .77
    out = combine(by_lr, _report("truncated-teacher", {"small": .75, "big": .76}))
    assert out["chosen"] == "2e-4"
    assert out["by_superlm_lr"]["1e-3"]["mean_val"] == pytest.approx(.75)
    assert out["by_arch"]["small"] == {"1e-3": .60, "2e-4": .74, "truncated": .75}


def test_reports_that_score_different_students_are_refused():
    with pytest.raises(SystemExit, match="different students"):
        combine({"1e-3": _report("student", {"a": .5}), "2e-4": _report("student", {"b": .6})}, None)


def test_the_command_writes_its_json(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_report("student", {"x": .5})))
    b.write_text(json.dumps(_report("student", {"x": .7})))
    out = tmp_path / "out.json"
    assert main(["--lr", f"1e-3={a}", "--lr", f"2e-4={b}", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["chosen"] == "2e-4" and "bert_superlm_lr.py" in got["command"]
    with pytest.raises(SystemExit, match="LR=REPORT"):
        main(["--lr", "1e-3", "--out", str(out)])
