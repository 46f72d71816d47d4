"""``searchkd acm`` end to end on a tiny BERT teacher, its rerun, and its bad inputs."""

from __future__ import annotations

import json
import os

import pytest

from searchkd.cli import main
from tests._text import need, write_text_setup, write_tokenizer

FAST = ["--stage1-steps", "20", "--stage2-steps", "10", "--stage3-steps", "4", "--batch-size", "4"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("acm")
    teacher, prose = write_text_setup(root, paragraphs=40)
    return root, teacher, prose


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["acm", *argv, "--quiet"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_acm_writes_json_png_and_reloadable_models(setup, capsys):
    root, teacher, prose = setup
    out = root / "run"
    argv = ["--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "0.25,1", "--out", str(out), *FAST]
    rc, text, err = _run(capsys, *argv)
    assert rc == 0, err
    res = json.loads((out / "acm.json").read_text())
    assert [r["budget"] for r in res["rows"]] == [0.25, 1.0]
    for r in res["rows"]:
        for key in ("flops_per_token", "distill_loss", "hidden_cosine", "embedding_cosine", "wall_time_ratio"):
            assert isinstance(r[key], float), key
        assert 0 < r["flops_per_token"] and r["static"]["fraction"] <= 1
        assert sum(sum(h) for h in r["k_distribution"]) == r["tokens"] * 2  # two layers
    assert (out / "acm.png").stat().st_size > 1000
    assert "budget" in text and "acm.json" in text
    from searchkd.api import load_acm
    from searchkd.supernets.acm.model import acm_modules

    model, meta = load_acm(str(out / "model-b0.25"), base_id=res["base"]["id"])
    assert meta["budget"] == 0.25 and len(acm_modules(model)) == 2
    # a rerun reuses the converted models: the same measured compute
    rc, _, err = _run(capsys, *argv)
    assert rc == 0, err
    again = json.loads((out / "acm.json").read_text())
    assert [r["flops_per_token"] for r in again["rows"]] == [r["flops_per_token"] for r in res["rows"]]


def test_convert_all_records_and_reloads_attention_acms(setup, capsys):
    """``--convert all``: every layer's Q/K/V/O and FFN become ACMs; acm.json records it, the
    k histogram has a row per ACM, and the saved folder reloads with the same modules."""
    root, teacher, prose = setup
    out = root / "run-all"
    rc, text, err = _run(capsys, "--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "0.5",
                         "--out", str(out), "--convert", "all", *FAST)
    assert rc == 0, err
    res = json.loads((out / "acm.json").read_text())
    assert res["config"]["convert"] == "all" and res["acm"]["convert"] == "all"
    row = res["rows"][0]
    assert len(row["k_distribution"]) == 2 * 5 and row["fraction"] > 0
    assert "attention projections" in text
    from searchkd.api import load_acm
    from searchkd.supernets.acm.model import acm_modules

    model, meta = load_acm(str(out / "model-b0.5"), base_id=res["base"]["id"])
    assert meta["convert"] == "all" and len(acm_modules(model)) == 10
    rc, _, err = _run(capsys, "--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "0.5",
                      "--out", str(out), "--convert", "ffn", *FAST)  # another conversion: refused, not reused
    assert rc == 2 and "other settings" in err and "convert" in err, err


@pytest.mark.parametrize("args, message", [
    (["--learners", "1"], "--learners must be at least 2"),
    (["--budgets", "0"], "outside (0, 1]"),
    (["--budgets", "0.5,1.5"], "outside (0, 1]"),
    (["--data", "embedded"], "acm needs text data"),
    (["--convert", "qkv"], "--convert must be one of ffn, attention, all"),
    (["--stage2-loss", "mse"], "--stage2-loss must be one of nll, ce, got 'mse'"),
    (["--routing", "sample"], "--routing must be one of argmax, expected, got 'sample'"),
])
def test_bad_arguments_exit_2_and_write_nothing(setup, capsys, args, message):
    root, teacher, prose = setup
    out = root / "bad"
    base = {"--model": f"hf:{teacher}", "--data": f"text:{prose}"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    rc, _, err = _run(capsys, *[x for kv in base.items() for x in kv], "--out", str(out), *FAST)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_short_text_and_model_without_ffn(setup, capsys, tmp_path):
    root, teacher, _ = setup
    short = tmp_path / "short.txt"
    short.write_text("The value is a statement.\n")
    rc, _, err = _run(capsys, "--model", f"hf:{teacher}", "--data", f"text:{short}", "--out", str(tmp_path / "o"))
    assert rc == 2 and "too short" in err
    need("transformers")
    from transformers import DistilBertConfig, DistilBertModel

    d = tmp_path / "distil"
    d.mkdir()
    cfg = DistilBertConfig(dim=32, n_layers=1, n_heads=4, hidden_dim=64, vocab_size=write_tokenizer(d),
                           max_position_embeddings=128)
    DistilBertModel(cfg).save_pretrained(d)
    rc, _, err = _run(capsys, "--model", f"hf:{d}", "--data", f"text:{root / 'prose.txt'}", "--out",
                      str(tmp_path / "o"))
    assert rc == 2 and "feed-forward blocks" in err
    assert not (tmp_path / "o").exists()


def test_converted_model_of_another_base_or_corrupt_is_refused(setup, capsys, tmp_path):
    root, teacher, prose = setup
    out = tmp_path / "run"
    argv = ["--data", f"text:{prose}", "--budgets", "1", "--out", str(out), *FAST]
    assert _run(capsys, "--model", f"hf:{teacher}", *argv)[0] == 0
    other_root = tmp_path / "other"
    other_root.mkdir()
    other, _ = write_text_setup(other_root, paragraphs=1)
    import torch
    from safetensors.torch import load_file, save_file

    w = load_file(str(other / "model.safetensors"))
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in w.items()}, str(other / "model.safetensors"))
    before = sorted(os.listdir(out))
    capsys.readouterr()  # the helper's own save_pretrained output
    rc, _, err = _run(capsys, "--model", f"hf:{other}", *argv)
    assert rc == 2 and "another base model" in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(out)) == before
    assert sorted(p.name for p in out.glob("model-b*")) == ["model-b1.0"]  # 1.0, not model-b1 (issue 23 item 11)
    (out / "model-b1.0" / "model.safetensors").write_bytes(b"not a safetensors file")
    rc, _, err = _run(capsys, "--model", f"hf:{teacher}", *argv)
    assert rc == 2 and "corrupt" in err
    del torch


def test_benchmark_script_compares_acm_with_distilled_static_width(setup, capsys, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import acm as bench

    root, teacher, prose = setup
    out = tmp_path / "run"
    assert _run(capsys, "--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "0.5", "--out", str(out),
                *FAST)[0] == 0
    assert bench.main(["--run", str(out), "--steps", "2", "--out", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["static_distilled"]["steps"] == 2
    assert rows[0]["ffn_fraction"] == min(1.0, json.loads((out / "acm.json").read_text())["rows"][0]["fraction"])
    assert bench.main(["--run", str(out), "--wall-only", "--reps", "1", "--out", str(tmp_path / "w.json")]) == 0
    wall = json.loads((tmp_path / "w.json").read_text())["rows"][0]
    assert set(wall["seconds"]) == {"dense", "acm", "acm_all_learners", "static"}
    assert all(v > 0 for v in wall["seconds"].values())
    assert wall["acm_over_dense"] == wall["seconds"]["acm"] / wall["seconds"]["dense"]


def test_a_student_exported_by_the_autodistil_search_converts(setup, capsys, tmp_path):
    """hf:DIR of an exported student whose shape no BertConfig holds (model_type searchkd_bert,
    5 heads of 3 beside a 36-wide hidden state) converts, and budget 1.0 runs every learner."""
    import torch

    from searchkd.hf.export import export_student
    from searchkd.spaces._bert_net import BertNet
    from searchkd.spaces.bert import BertSpace

    root, teacher, prose = setup
    vocab = len((teacher / "vocab.txt").read_text().split())
    space = BertSpace(layers=(2,), hidden=(36,), heads=(5,), ratios=(2.0,), name="toy", vocab_size=vocab,
                      max_position=128)
    torch.manual_seed(0)
    net = BertNet(space.net_config("L2-H36-A5-R2.0")).eval()
    student = export_student(net, "L2-H36-A5-R2.0", tmp_path / "student", space="toy", tokenizer_dir=teacher)
    assert json.loads((student / "config.json").read_text())["model_type"] == "searchkd_bert"
    out = tmp_path / "acm"
    rc, text, err = _run(capsys, "--model", f"hf:{student}", "--data", f"text:{prose}", "--budgets", "0.5,1",
                         "--out", str(out), *FAST)
    assert rc == 0, err
    rows = json.loads((out / "acm.json").read_text())["rows"]
    assert rows[1]["calibration"]["fraction_after"] == 1.0
    assert all(k == 4 for k in rows[1]["mean_k"])  # every real held-out token ran all 4 learners
    assert rows[0]["calibration"]["fraction_after"] == pytest.approx(0.5, abs=0.05)


def test_a_finished_out_with_changed_settings_is_refused_not_reused(setup, capsys, tmp_path):
    """Issue 23 item 1: a rerun over a finished --out with other settings must not reuse the
    converted models (and then claim the new config in acm.json)."""
    root, teacher, prose = setup
    out = tmp_path / "run"
    argv = ["--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "1", "--out", str(out),
            "--stage2-loss", "nll", "--routing", "argmax",
            "--no-calibrate-before-stage3"]  # what a folder saved before these flags had
    assert _run(capsys, *argv, *FAST)[0] == 0
    before = (out / "acm.json").read_bytes()
    for changed in (["--learners", "2"], ["--stage3-steps", "5"], ["--no-calibrate"], ["--seed", "1"],
                    ["--stage2-loss", "ce"], ["--calibrate-before-stage3"], ["--routing", "expected"]):
        rc, _, err = _run(capsys, *argv, *FAST, *changed)
        assert rc == 2 and "other settings" in err and len(err.strip().splitlines()) == 1, (changed, err)
        assert (out / "acm.json").read_bytes() == before
    rc, _, err = _run(capsys, *argv, *FAST)  # the same settings still reuse it
    assert rc == 0, err
    saved = out / "model-b1.0" / "acm.json"  # as saved before --stage2-loss and --calibrate-before-stage3
    meta = json.loads(saved.read_text())
    del meta["config"]["stage2_loss"], meta["calibrate_before_stage3"], meta["routing"]
    saved.write_text(json.dumps(meta))
    rc, _, err = _run(capsys, *argv, *FAST)
    assert rc == 0, err


@pytest.mark.parametrize("routing", ["argmax", "expected"])
def test_stage2_report_and_calibration_before_stage3(setup, capsys, tmp_path, monkeypatch, routing):
    """acm.json's ``stage2`` block measures the gates on tokens cached beyond the training cache;
    ``--calibrate-before-stage3`` hands stage 3 a model shifted onto its budget, records the
    shift as ``calibration_before`` and keys stage 3's checkpoint on it. Stage 3 samples its
    gates from their logits, so the shift before it goes into the logits under either routing;
    with ``expected`` the calibration after it moves the offset."""
    import copy
    import functools

    from searchkd.supernets.acm import train

    root, teacher, prose = setup
    monkeypatch.setattr(train, "ACMConfig", functools.partial(train.ACMConfig, cache_tokens=800))  # the prose is short
    seen = []
    real = train.stage3

    def spy(model, dense, ids, mask, budget, config, *, meta, **kw):
        probe = copy.deepcopy(model)
        routings = {a.routing for a in train.acm_modules(model)}
        for a in train.acm_modules(probe):  # what the shifted logits' argmax spends
            a.routing = "argmax"
        start = train.calibrate_budget(probe, ids, mask, budget, tolerance=1.0)["fraction_before"]
        seen.append((meta, start, routings))
        return real(model, dense, ids, mask, budget, config, meta=meta, **kw)

    monkeypatch.setattr(train, "stage3", spy)
    out = tmp_path / "run"
    argv = ["--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "0.5", "--out", str(out), *FAST,
            "--stage2-loss", "ce", "--calibrate-before-stage3", "--routing", routing]
    rc, text, err = _run(capsys, *argv)
    assert rc == 0, err
    res = json.loads((out / "acm.json").read_text())
    assert res["config"]["stage2_loss"] == res["acm"]["stage2_loss"] == "ce"
    assert res["config"]["calibrate_before_stage3"] is True
    rep = res["stage2"]
    assert rep["held_out_tokens"] == 100 and len(rep["label_accuracy"]) == 2
    assert all(0 <= a <= 1 for a in rep["label_accuracy"])
    assert all(sum(s) == pytest.approx(1.0) for s in rep["argmax_share"] + rep["label_share"])
    row = res["rows"][0]
    meta, start, routings = seen[0]
    assert meta["calibrate_before_stage3"] is True and meta["config"]["stage2_loss"] == "ce"
    assert row["calibration_before"]["fraction_after"] == pytest.approx(start)  # what stage 3 started from
    assert start == pytest.approx(0.5, abs=0.05) and row["calibration"] is not None
    assert row["calibration_before"]["routing"] == "argmax"  # into the logits, which stage 3 samples
    assert routings == {routing} and row["calibration"]["routing"] == routing  # the run's routing after it
    assert "stage 2" in text
    rc, _, err = _run(capsys, *argv)  # reused: the block comes back from the converted folder
    assert rc == 0, err
    again = json.loads((out / "acm.json").read_text())
    assert again["stage2"] == rep and again["rows"][0]["calibration_before"] == row["calibration_before"]


def test_a_converted_folder_is_not_a_plain_bert(setup, capsys, tmp_path):
    """Issue 23 items 2, 7, 10: an ACM folder has its own model_type, so plain transformers refuses
    it and hf: names what it is; load_acm takes the name it was converted from; the weights
    file has the mode of the files beside it."""
    import stat

    import transformers

    from searchkd.errors import SearchKDError
    from searchkd.supernets.acm.io import load_acm
    from searchkd.teachers.text import load_text_teacher

    root, teacher, prose = setup
    out = tmp_path / "run"
    assert _run(capsys, "--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "0.5", "--out", str(out),
                *FAST)[0] == 0
    d = out / "model-b0.5"
    config = json.loads((d / "config.json").read_text())
    assert config["model_type"] == "searchkd_acm" and config["architectures"] == ["SearchKDACMModel"]
    with pytest.raises(Exception):
        transformers.AutoModel.from_pretrained(str(d))
    transformers.AutoTokenizer.from_pretrained(str(d))  # the tokenizer still opens
    for folder in (d, _as_old_folder(d, tmp_path / "old")):  # one saved before it had its own model_type
        with pytest.raises(SearchKDError, match="converted by `searchkd acm`"):
            load_text_teacher(f"hf:{folder}")
        rc, _, err = _run(capsys, "--model", f"hf:{folder}", "--data", f"text:{prose}", "--out", str(tmp_path / "o"))
        assert rc == 2 and "converted by `searchkd acm`" in err and len(err.strip().splitlines()) == 1
    for base_id in (f"hf:{teacher.resolve()}", json.loads((out / "acm.json").read_text())["base"]["id"]):
        model, meta = load_acm(d, base_id=base_id)
        assert meta["budget"] == 0.5
    with pytest.raises(SearchKDError, match="another base model"):
        load_acm(d, base_id="minilm-l6")
    mode = stat.S_IMODE((d / "model.safetensors").stat().st_mode)
    assert mode == stat.S_IMODE((d / "acm.json").stat().st_mode), oct(mode)


def _as_old_folder(d, to):
    import shutil

    shutil.copytree(d, to)
    config = json.loads((to / "config.json").read_text())
    config["model_type"] = config.pop("acm_base_model_type")
    (to / "config.json").write_text(json.dumps(config))
    return to
