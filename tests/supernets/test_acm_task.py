"""Stage 3 on a labelled task (the authors' task loss) and ``searchkd acm --task``."""

from __future__ import annotations

import copy
import csv
import json

import pytest

from tests._text import need, write_text_setup

need("transformers")
import torch  # noqa: E402

from searchkd.cli import main  # noqa: E402
from searchkd.supernets.acm.model import acmize  # noqa: E402
from searchkd.supernets.acm.stage3 import TaskRows  # noqa: E402
from searchkd.supernets.acm.steps import pooled_logits  # noqa: E402
from searchkd.supernets.acm.task import new_head  # noqa: E402
from searchkd.supernets.acm.train import ACMConfig, data_id, stage3, stage_meta  # noqa: E402
from tests.supernets.test_acm import _batch, _dense  # noqa: E402


def test_stage3_with_a_task_learns_the_task_loss():
    dense = _dense()
    ids, mask = _batch()
    labels = (ids[:, 0] % 2).long()  # the first token's parity: learnable from the sequence
    model = acmize(copy.deepcopy(dense), 4)
    head = new_head(32, 2, 0)

    def ce() -> float:
        model.eval()
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(pooled_logits(model, head, ids, mask), labels))

    before = ce()
    config = ACMConfig(stage3_steps=40, stage3_lr=3e-3, batch_size=16, budget_weight=0.0)
    losses = stage3(model, dense, ids, mask, 0.5, config, meta=stage_meta("t", config, data_id(ids, mask)),
                    task=TaskRows(ids, mask, labels, head))
    assert ce() < 0.7 * before
    assert len(losses) == 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("acmtask")
    teacher, prose = write_text_setup(root, paragraphs=40)
    rows = [(f"the quick {'red' if i % 2 else 'blue'} fox number {i} jumps", "red" if i % 2 else "blue")
            for i in range(60)]
    with open(root / "task.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return root, teacher, prose


def model_tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def test_acm_task_writes_accuracies_and_a_reloadable_head(setup, capsys):
    root, teacher, prose = setup
    out = root / "run"
    argv = ["acm", "--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "0.5", "--out", str(out),
            "--task", f"csv:{root / 'task.csv'}", "--task-steps", "5", "--stage1-steps", "5", "--stage2-steps", "5",
            "--stage3-steps", "3", "--batch-size", "4", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    res = json.loads((out / "acm.json").read_text())
    assert res["task"]["n_test"] == 18 and 0 <= res["task"]["dense_accuracy"] <= 1
    row = res["rows"][0]
    assert 0 <= row["task_accuracy"] <= 1 and 0 <= row["static"]["task_accuracy"] <= 1
    assert (out / "model-b0.5" / "task_head.safetensors").is_file()
    # the compute the task accuracy was measured at: the reloaded model over the task's test rows
    from searchkd.supernets.acm.io import load_acm
    from searchkd.supernets.acm.model import count_flops, reset_flops
    from searchkd.supernets.acm.task import accuracy, load_task_split

    model, _ = load_acm(out / "model-b0.5", base_id=f"hf:{teacher}", device="cpu")
    split = load_task_split(f"csv:{root / 'task.csv'}", model_tokenizer(out / "model-b0.5"), 0)
    head = new_head(model.config.hidden_size, 2, 0)
    reset_flops(model)
    accuracy(model, head, split.test)
    assert row["task_fraction"] == pytest.approx(count_flops(model)["fraction"], rel=1e-9)
    assert row["static"]["task_fraction"] == pytest.approx(min(1.0, row["task_fraction"]))
    assert "task csv:" in capsys.readouterr().out
    assert main(argv) == 0  # the rerun reuses the model and its head: the same accuracy
    assert json.loads((out / "acm.json").read_text())["rows"][0]["task_accuracy"] == row["task_accuracy"]


def test_acm_bad_task_is_one_line(setup, capsys):
    root, teacher, prose = setup
    rc = main(["acm", "--model", f"hf:{teacher}", "--data", f"text:{prose}", "--out", str(root / "bad"),
               "--task", "no-such-task", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("searchkd: error: unknown task") and err.count("\n") == 1
