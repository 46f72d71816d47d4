"""``distill --task``: the search's top students and their controls fine-tuned on a labelled task."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_text_distill import make_search  # noqa: E402

from searchkd.cli import main  # noqa: E402
from searchkd.distill.downstream import finetune_accuracy, run_downstream  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def test_downstream_block_end_to_end(tmp_path, capsys):
    out, trials, _ = make_search(tmp_path)
    from searchkd.evaluate.text import _teacher, text_split

    cfg = json.loads((out / "result.json").read_text())["config"]
    teacher = _teacher(cfg["teacher"], None, "cpu")
    train_rows, _ = text_split(cfg["data"], teacher, 0)
    # a task of fresh sentences (label: whether "python" occurs) plus 12 sentences the SuperLM trained on
    g = np.random.default_rng(3)
    words = "the a is of to and in it that sentence statement value".split()
    fresh = [" ".join(g.choice(words + ["python"] * (k % 2), size=7)).capitalize() + "." for k in range(80)]
    seen = [s.strip() + "." for s in train_rows.sentences[0].split(".")[:12] if s.strip()]
    rows = [(s, "python" in s) for s in fresh + seen]
    f = tmp_path / "task.csv"
    f.write_text("text,label\n" + "".join(f"{s},{'yes' if y else 'no'}\n" for s, y in rows))
    from searchkd.data.text_tasks import load_task

    _, test = load_task(f"csv:{f}").split(0.3, seed=0)
    expected_seen = sum(t in "\n".join(train_rows.sentences) for t in test.texts)
    assert expected_seen > 0

    rep = run_downstream(out / "result.json", task=f"csv:{f}", top=1, finetune_steps=6, seeds=(0, 1), device="cpu")
    d = json.loads((out / "verify.json").read_text())["downstream"]
    assert d == json.loads(json.dumps(rep["downstream"])) and d["complete"]
    assert d["n_test_seen_by_superlm"] == expected_seen and d["n_test"] == len(test) - expected_seen
    best = max(trials, key=lambda t: t["scores"]["superlm"])["arch"]
    roles = [r["role"] for r in d["rows"]]
    assert roles[0] == "student" and roles[1] == "random" and roles[-1] == "teacher" and d["rows"][0]["arch"] == best
    for r in d["rows"]:
        assert len(r["accuracies"]) == 2 and all(0 <= a <= 1 for a in r["accuracies"])
        assert r["accuracy_mean"] == pytest.approx(np.mean(r["accuracies"]))
        assert r["accuracy_sd"] == pytest.approx(np.std(r["accuracies"], ddof=1))
    # the student row is the SuperLM's slice fine-tuned: an independent call gives the same accuracy
    from searchkd.supernets import SuperLM

    lm = SuperLM.load(out / "supernet", None, teacher=teacher.info.id, device="cpu")
    task = load_task(f"csv:{f}")
    tr, te = task.split(0.3, seed=0)
    te = te.subset([i for i, t in enumerate(te.texts) if t not in "\n".join(train_rows.sentences)])
    enc = [(*x.encode(teacher.tokenizer, 64), torch.from_numpy(x.labels)) for x in (tr, te)]
    acc = finetune_accuracy(lm.extract(best), lm.space.arch(best).hidden, *enc, classes=2, steps=6, seed=1)
    assert acc == d["rows"][0]["accuracies"][1]
    # controls=False, with_teacher=False: the student alone (benchmark 2's subnets), same accuracy
    from searchkd.distill.downstream import downstream_block

    only = downstream_block(f"csv:{f}", archs=[best], lm=lm, teacher=teacher, space=lm.space,
                            superlm_rows=train_rows.sentences, split_seed=0, steps=6, seeds=(1,), device="cpu",
                            with_teacher=False, controls=False)
    assert [r["role"] for r in only["rows"]] == ["student"] and only["rows"][0]["accuracies"] == [acc]

    assert main(["distill", "--result", str(out / "result.json"), "--task", f"csv:{f}", "--finetune-steps", "2",
                 "--top", "1", "--device", "cpu", "--quiet"]) == 0
    assert "downstream csv:" in capsys.readouterr().out
    assert main(["distill", "--result", str(out / "result.json"), "--finetune-steps", "2"]) == 2
    assert "--finetune-steps needs --task" in capsys.readouterr().err
