"""benchmarks/acm_stage3.py (issue 25's benchmark 2): the earlier stage 3 retrained from a run's
stage checkpoints, against the run's own models measured the same way."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests._text import need, write_text_setup  # noqa: E402

need("transformers")

from benchmarks import acm_stage3  # noqa: E402
from searchkd.cli import main as searchkd  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("acmstage3")
    teacher, prose = write_text_setup(root, paragraphs=40)
    with open(root / "task.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows((f"the quick {'red' if i % 2 else 'blue'} fox number {i} jumps", "red" if i % 2 else "blue")
                    for i in range(60))
    out = root / "run"
    assert searchkd(["acm", "--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "0.5,0.75",
                     "--out", str(out), "--task", f"csv:{root / 'task.csv'}", "--task-steps", "5",
                     "--stage1-steps", "5", "--stage2-steps", "5", "--stage3-steps", "3", "--batch-size", "4",
                     "--quiet"]) == 0
    return out


def test_the_earlier_stage3_has_no_task_and_no_entropy_and_the_authors_rows_are_the_runs(run, tmp_path, monkeypatch):
    import searchkd.supernets.acm.train as train

    seen = []
    real = train.stage3

    def spy(model, dense, ids, mask, budget, config, **kw):
        seen.append((budget, config, kw.get("task")))
        return real(model, dense, ids, mask, budget, config, **kw)

    monkeypatch.setattr(train, "stage3", spy)
    out = tmp_path / "b2.json"
    assert acm_stage3.main(["--runs", str(run), "--out", str(out)]) == 0
    assert [b for b, _, _ in seen] == [0.5, 0.75]
    for _, config, task in seen:  # the hidden-state loss (no task), diversity kept, entropy dropped
        assert task is None and config.entropy_weight == 0 and config.diversity_weight == 0.05
        assert config.stage3_steps == 3 and config.batch_size == 4
    got = json.loads(out.read_text())
    saved = json.loads((run / "acm.json").read_text())
    for row, r in zip(got["rows"], saved["rows"]):
        # the run's models re-measured here: the same accuracy and compute as the run wrote
        assert row["authors"]["task_accuracy"]["values"] == [pytest.approx(r["task_accuracy"])]
        assert row["authors"]["task_fraction"]["values"] == [pytest.approx(r["task_fraction"])]
        assert len(row["before_issue_25"]["mean_k"]) == len(r["mean_k"])
        # calibrated as the run was (this toy model's gates cost much of its tiny FFN: not the budget itself)
        assert row["before_issue_25"]["fraction"]["mean"] == pytest.approx(r["fraction"], abs=0.05)


def test_a_run_without_its_stage_checkpoints_is_refused(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("stages"))
    (copy / "acm.json").write_text((run / "acm.json").read_text())
    with pytest.raises(SystemExit, match="stage checkpoints"):
        acm_stage3.main(["--runs", str(copy), "--out", str(tmp_path / "x.json")])


def test_stage_checkpoints_of_other_settings_are_refused_not_loaded(run, tmp_path):
    import shutil

    import torch

    copy = tmp_path / "other"
    shutil.copytree(run, copy)
    path = copy / "stages" / "stage2.pt"
    state = torch.load(path, weights_only=True)
    state["meta"]["config"]["stage2_steps"] += 1  # as if stage 2 had run longer than the run says
    torch.save(state, path)
    with pytest.raises(SystemExit, match="not this run's stage2.*stage2-steps"):
        acm_stage3.main(["--runs", str(copy), "--out", str(tmp_path / "x.json")])
