"""ACM stages 1-2 beyond the paper's rules: the stage-2 loss option (``stage2_loss``), the
stage-2 label-accuracy report on held-out tokens, and stage checkpoints keyed only on the
settings each stage depends on (checkpoints keyed on the whole config still resume)."""

from __future__ import annotations

import copy
from dataclasses import fields, replace

import pytest

from tests._text import need

need("transformers")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.supernets.acm.model import ACM, ACMShape, acm_modules, acmize  # noqa: E402
from searchkd.supernets.acm.train import (ACMConfig, batch_rows, cache_ffn, cache_modules, data_id,  # noqa: E402
                                          gate_labels, split_cache, stage1, stage2, stage2_report, stage3,
                                          stage_meta)
from tests.supernets.test_acm import _batch, _dense  # noqa: E402

#: what each stage's checkpoint depends on, listed here by hand (not read from the code)
STAGE1 = {"learners", "init", "stage1_steps", "token_batch", "cache_tokens", "stage1_lr", "seed", "convert"}
STAGE2 = STAGE1 | {"stage2_steps", "stage2_lr", "label_factor", "stage2_loss"}
CHANGED = {"init": ("slices", "random"), "convert": ("ffn", "all"), "stage2_loss": ("nll", "ce")}


def _changed(config: ACMConfig, name: str) -> ACMConfig:
    """``config`` with ``name`` set to another value than its default has."""
    v = getattr(config, name)
    if name in CHANGED:
        v = next(c for c in CHANGED[name] if c != v)
    else:
        v = v * 2 if isinstance(v, float) else v + 1
    return replace(config, **{name: v})


# ---- A: the stage-2 loss --------------------------------------------------------------------
def _two_acms() -> torch.nn.Module:
    """An FFN ACM (k = 0…4) and a projection ACM (k = 1…4) held by hand (acm_modules order)."""
    torch.manual_seed(0)
    holder = torch.nn.Module()
    holder.a = ACM(ACMShape(hidden=8, intermediate=16, learners=4, width=4, gate_hidden=4, activation="gelu"))
    holder.b = ACM(ACMShape(hidden=8, intermediate=8, learners=4, width=2, gate_hidden=4, activation="identity",
                            kind="linear", min_k=1))
    return holder


def test_stage2_ce_is_the_cross_entropy_of_the_gate_logits_over_the_padded_choices():
    holder = _two_acms()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 8, generator=g)
    cache = [(x, torch.randn(300, 8, generator=g)), (x, torch.randn(300, 8, generator=g))]
    config = ACMConfig(stage2_steps=1, token_batch=64, stage2_loss="ce")
    idx = batch_rows(0, 300, 64, 0, "stage2")
    want = 0.0
    with torch.no_grad():
        for acm, (xx, yy) in zip(acm_modules(holder), cache):
            lab = gate_labels(acm, xx, yy, config.label_factor)[idx]
            # the choices as pad_choices lays them out (index = k), k < min_k impossible
            padded = F.pad(acm.gate_logits(xx[idx]), (acm.shape.min_k, 0), value=float("-inf"))
            want += float(F.cross_entropy(padded, lab)) / 2
    assert set(gate_labels(acm_modules(holder)[1], *cache[1], 1.2).tolist()) <= {2, 3, 4}
    assert stage2(holder, cache, config, meta={})[0] == pytest.approx(want, rel=1e-6)


def test_bad_stage2_loss_is_one_line():
    with pytest.raises(SearchKDError, match=r"^--stage2-loss must be one of nll, ce, got 'mse'$"):
        ACMConfig(stage2_loss="mse")


# ---- B: the stage-2 report ------------------------------------------------------------------
def _planted() -> tuple[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """An FFN ACM whose dense output is learner 1 alone where x[0] > 0 (e_1 = 0: label 2) and
    far from every partial sum elsewhere (e_0 ≈ … ≈ e_4, no learner helps: label 4), its gate
    set by hand to choose k = 2 where x[0] > 0 and k = 3 elsewhere; a projection ACM (k ≥ 1)
    whose gate always chooses k = 4."""
    holder = _two_acms()
    torch.manual_seed(1)
    holder.a = ACM(ACMShape(hidden=8, intermediate=32, learners=4, width=8, gate_hidden=16, activation="relu"))
    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        holder.a.b2.fill_(1.0)  # no learner's output is zero
        sums = holder.a.partial_sums(x)
        y = torch.where(x[:, :1] > 0, sums[:, 1], torch.full_like(sums[:, 1], 1e4))
        first, middle, last = holder.a.gate
        for layer in (first, middle, last):
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[0, 0] = 1.0  # unit 0 = x[0]
        middle.weight.copy_(torch.eye(16))
        last.weight[2, 0], last.weight[3, 0] = 1.0, -1.0
        last.bias.copy_(torch.tensor([-5.0, -5.0, 0.0, 0.0, -5.0]))
        b_last = holder.b.gate[-1]
        b_last.weight.zero_()
        b_last.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))  # k = 1…4: always 4
        y_b = holder.b.partial_sums(x)[:, 3] + 0.1 * torch.randn(400, 8, generator=torch.Generator().manual_seed(4))
    return holder, [(x, y), (x, y_b)], x


def test_stage2_report_on_a_planted_gate():
    holder, held, x = _planted()
    p = float((x[:, 0] > 0).float().mean())
    labels_b = gate_labels(holder.b, *held[1], 1.2)
    rep = stage2_report(holder, held, 1.2)
    assert rep["held_out_tokens"] == 400
    assert rep["label_accuracy"][0] == pytest.approx(p)  # k = 2 right on x[0] > 0, k = 3 never a label
    assert rep["argmax_share"][0] == pytest.approx([0, 0, p, 1 - p, 0])
    assert rep["label_share"][0] == pytest.approx([0, 0, p, 0, 1 - p])
    assert rep["argmax_share"][1] == pytest.approx([0, 0, 0, 0, 1])  # index = k, min_k 1 included
    assert rep["label_accuracy"][1] == pytest.approx(float((labels_b == 4).float().mean()))
    empty = stage2_report(holder, [(v[:0], w[:0]) for v, w in held], 1.2)
    assert empty == {"held_out_tokens": 0, "label_accuracy": None, "argmax_share": None, "label_share": None}


def test_stage2_ce_learns_the_labels_of_held_out_tokens():
    holder, held, _ = _planted()
    acm = holder.a
    torch.manual_seed(5)
    for layer in acm.gate:
        layer.reset_parameters()
    x = torch.randn(1024, 8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        sums = acm.partial_sums(x)
        y = torch.where(x[:, :1] > 0, sums[:, 1], torch.full_like(sums[:, 1], 1e4))
    one = torch.nn.Module()
    one.acm = acm
    stage2(one, [(x, y)], ACMConfig(stage2_steps=150, token_batch=256, stage2_loss="ce"), meta={})
    assert stage2_report(one, held[:1], 1.2)["label_accuracy"][0] > 0.95


@pytest.mark.parametrize("convert", ["ffn", "all"])
def test_held_out_tokens_follow_an_unchanged_training_cache(convert):
    """Caching more tokens leaves the first ``cache_tokens`` as they were (stages 1 and 2 train
    on the same tokens as before the report existed); the rest is the report's."""
    dense = _dense()
    ids, mask = _batch()  # 32 rows × 12 real tokens
    alone = cache_modules(dense, ids, mask, max_tokens=200, seed=0, convert=convert)
    train, held = split_cache(cache_modules(dense, ids, mask, max_tokens=250, seed=0, convert=convert), 200)
    assert len(train) == len(held) == len(alone)
    for (x, y), (tx, ty), (hx, hy) in zip(alone, train, held):
        assert torch.equal(tx, x) and torch.equal(ty, y)
        assert len(hx) == len(hy) == 50
    short_train, short_held = split_cache(cache_modules(dense, ids, mask, max_tokens=500, seed=0), 400)
    assert len(short_train[0][0]) == 384 and len(short_held[0][0]) == 0  # text shorter than the cache


# ---- D: stage checkpoints keyed on what each stage depends on -------------------------------
@pytest.mark.parametrize("name", [f.name for f in fields(ACMConfig) if f.name != "checkpoint_every"])
def test_each_stage_key_holds_only_what_the_stage_depends_on(name):
    a = ACMConfig()
    b = _changed(a, name)
    for stage, depends in (("stage1", name in STAGE1), ("stage2", name in STAGE2), ("stage3", True)):
        same = stage_meta("m", a, "d", stage) == stage_meta("m", b, "d", stage)
        assert same != depends, (stage, name)
    assert stage_meta("m", a, "d", "stage1") == stage_meta("m", replace(a, checkpoint_every=7), "d", "stage1")


def _stages(tmp_path, config: ACMConfig, meta=None) -> tuple[torch.nn.Module, list[float], list[float]]:
    """Stages 1 and 2 of the tiny BERT under ``config`` with checkpoints in ``tmp_path``; ``meta``:
    the one meta both stages use (the old whole-config key), else each stage's own."""
    dense = _dense()
    ids, mask = _batch()
    cache = cache_ffn(dense, ids, mask, max_tokens=400, seed=0)
    model = acmize(copy.deepcopy(dense), 4)
    key = data_id(ids, mask)
    h1 = stage1(model, cache, config, meta=meta or stage_meta("tiny", config, key, "stage1"), ckpt=tmp_path)
    h2 = stage2(model, cache, config, meta=meta or stage_meta("tiny", config, key, "stage2"), ckpt=tmp_path)
    return model, h1, h2


FAST = ACMConfig(stage1_steps=4, stage2_steps=3, stage3_steps=2, token_batch=64, batch_size=4, stage2_loss="nll")


def test_a_changed_stage2_loss_resumes_stage1_not_stage2(tmp_path):
    first, h1, h2 = _stages(tmp_path, FAST)
    assert len(h1) == 4 and len(h2) == 3
    again, h1, h2 = _stages(tmp_path, FAST)
    assert h1 == [] and h2 == []  # resumed at their last step
    with pytest.raises(SearchKDError, match=r"stage2\.pt .*stage2-loss 'nll', now 'ce'"):
        _stages(tmp_path, replace(FAST, stage2_loss="ce"))
    (tmp_path / "stage2.pt").unlink()
    model, h1, h2 = _stages(tmp_path, replace(FAST, stage2_loss="ce"))
    assert h1 == [] and len(h2) == 3  # stage 1 resumed, stage 2 redone
    for a, b in zip(acm_modules(first), acm_modules(model)):
        assert torch.equal(a.w1, b.w1)


def test_a_changed_stage3_lr_resumes_stages_1_and_2(tmp_path):
    first, _, _ = _stages(tmp_path, FAST)
    dense = _dense()
    ids, mask = _batch()
    stage3(copy.deepcopy(first), dense, ids, mask, 0.5, FAST, ckpt=tmp_path,
           meta=stage_meta("tiny", FAST, data_id(ids, mask), "stage3"))
    other = replace(FAST, stage3_lr=1e-3)
    model, h1, h2 = _stages(tmp_path, other)
    assert h1 == [] and h2 == []
    for a, b in zip(acm_modules(first), acm_modules(model)):
        assert torch.equal(a.gate[-1].weight, b.gate[-1].weight)
    with pytest.raises(SearchKDError, match=r"stage3-b0\.5\.pt .*stage3-lr"):
        stage3(model, dense, ids, mask, 0.5, other, ckpt=tmp_path,
               meta=stage_meta("tiny", other, data_id(ids, mask), "stage3"))
    with pytest.raises(SearchKDError, match="stage1-lr"):
        _stages(tmp_path, replace(FAST, stage1_lr=1e-2))


def test_checkpoints_keyed_on_the_whole_config_still_resume(tmp_path):
    """stage1.pt and stage2.pt as saved before the per-stage keys (runs/acm25-s0's): one meta,
    the whole config but ``checkpoint_every``, ``convert`` left out at ffn, no ``stage2_loss``."""
    ids, mask = _batch()
    old = {"learners": 4, "init": "slices", "stage1_steps": 4, "stage2_steps": 3, "stage3_steps": 2, "token_batch": 64,
           "batch_size": 4, "cache_tokens": 16384, "stage1_lr": 0.001, "stage2_lr": 0.01, "stage3_lr": 0.0001,
           "label_factor": 1.2, "budget_weight": 0.1, "diversity_weight": 0.05, "entropy_weight": 0.05, "seed": 0}
    legacy = {"format": "searchkd-acm-stage/1", "base": "tiny", "config": old, "data": data_id(ids, mask)}
    first, _, _ = _stages(tmp_path, FAST, meta=legacy)
    model, h1, h2 = _stages(tmp_path, replace(FAST, stage3_steps=9))
    assert h1 == [] and h2 == []
    with pytest.raises(SearchKDError, match="stage2-loss"):
        _stages(tmp_path, replace(FAST, stage2_loss="ce"))  # stage 1 resumed, stage 2 refused
    with pytest.raises(SearchKDError, match="stage1.pt"):
        _stages(tmp_path, replace(FAST, convert="all"))


def test_the_converted_models_id_names_its_tuning_batch():
    """With --task the dense model is tuned before conversion, on batches of max(--batch-size, 16):
    a batch over 16 tunes another model, so the id every stage's key holds names it (16, every
    earlier run's, is left unnamed so that their checkpoints resume); --batch-size itself is
    stage 3's alone."""
    from searchkd.supernets.acm.run import ACMRunConfig, source_id

    assert source_id("b", ACMRunConfig(batch_size=32)) == "b"
    assert source_id("b", ACMRunConfig(task="t", task_steps=30, batch_size=4)) == "b+task:t:30"
    assert source_id("b", ACMRunConfig(task="t", task_steps=30, batch_size=16)) == "b+task:t:30"
    assert source_id("b", ACMRunConfig(task="t", task_steps=30, batch_size=32)) == "b+task:t:30:batch32"
