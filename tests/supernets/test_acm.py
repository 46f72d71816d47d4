"""Adaptive Computation Modules: exactness of the conversion, grouped vs masked execution, the
FLOP count against a hand count, stage 1 and the budget penalty on a tiny BERT, save/reload."""

from __future__ import annotations

import copy

import pytest

from tests._text import need

need("transformers")
import torch  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.supernets.acm.model import (ACM, ACMShape, acm_modules, acmize, count_flops, reset_flops,  # noqa: E402
                                    set_token_mask)
from searchkd.supernets.acm.io import load_acm, save_acm  # noqa: E402
from searchkd.supernets.acm.train import (ACMConfig, cache_ffn, calibrate_budget, data_id, stage1, stage2,  # noqa: E402
                                          stage3, stage_meta)


def _dense(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        vocab_size=100, max_position_embeddings=32)
    return BertModel(config).eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 100, (32, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[:, 12:] = 0
    return ids, mask


def _meta(config: ACMConfig, ids: torch.Tensor, mask: torch.Tensor) -> dict:
    return stage_meta("tiny", config, data_id(ids, mask))


def _fraction(model, ids, mask) -> float:
    with torch.no_grad(), set_token_mask(model, mask):
        reset_flops(model)
        model(input_ids=ids, attention_mask=mask)
    return count_flops(model)["fraction"]


def test_sliced_init_with_every_learner_is_the_dense_model():
    dense = _dense()
    ids, mask = _batch()
    acm = acmize(copy.deepcopy(dense), 4)
    for m in acm_modules(acm):
        m.force_k = 4
    with torch.no_grad():
        a = dense(input_ids=ids, attention_mask=mask).last_hidden_state
        b = acm(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


def test_grouped_execution_equals_masked_computation_exactly():
    # integer weights and inputs in float64 with ReLU: every sum is exact whatever the BLAS
    # blocking of a row subset, so any difference would be a grouping error
    g = torch.Generator().manual_seed(0)
    acm = ACM(ACMShape(hidden=24, intermediate=48, learners=4, width=12, gate_hidden=8, activation="relu"))
    acm = acm.double().eval()
    with torch.no_grad():
        for p in (acm.w1, acm.b1, acm.w2, acm.b2):
            p.copy_(torch.randint(-3, 4, p.shape, generator=g).double())
    x = torch.randint(-3, 4, (6, 9, 24), generator=g).double()
    k = torch.randint(0, 5, (6, 9), generator=g)
    with torch.no_grad():
        assert torch.equal(acm.grouped(x, k), acm.masked(x, k))
        assert torch.equal(acm.grouped(x, torch.zeros_like(k)), torch.zeros_like(x))
        # one token alone at the highest choice, N: its last learner runs (the authors' forward_gated
        # loops range(1, highest_choice) and skips it)
        lone = torch.zeros_like(k)
        lone[2, 5] = 4
        assert torch.equal(acm.grouped(x, lone), acm.masked(x, lone))
        assert not torch.equal(acm.grouped(x, lone), acm.grouped(x, lone.clamp(max=3)))
    # float32 GELU learners: equal up to the rounding of matmuls over fewer rows
    torch.manual_seed(0)
    acm = ACM(ACMShape(hidden=24, intermediate=48, learners=4, width=12, gate_hidden=8, activation="gelu")).eval()
    x = torch.randn(6, 9, 24)
    with torch.no_grad():
        torch.testing.assert_close(acm.grouped(x, k), acm.masked(x, k), rtol=0, atol=1e-6)


def test_flops_count_matches_a_hand_count():
    torch.manual_seed(0)
    shape = ACMShape(hidden=24, intermediate=48, learners=4, width=12, gate_hidden=8, activation="gelu")
    acm = ACM(shape).eval()
    x = torch.randn(2, 5, 24)
    k = torch.tensor([[0, 1, 2, 3, 4], [4, 4, 0, 0, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    acm.token_mask = mask
    with torch.no_grad():
        acm.grouped(x, k * mask)
    learner = 2 * 24 * 12 + 2 * 12 * 24  # two matmuls per learner, 2 FLOPs a multiply-add
    gate = 2 * 24 * 8 + 2 * 8 * 8 + 2 * 8 * 5  # the depth-3 gate: three matmuls
    ran = (0 + 1 + 2 + 3 + 4) + (4 + 4 + 0)  # learners run on the 8 real tokens; padding k = 0
    assert acm.tokens == 8
    assert acm.flops == ran * learner + 8 * gate
    assert shape.dense_flops() == 4 * 24 * 48 == 4 * shape.learner_flops()


def test_stage1_from_random_learners_approaches_the_dense_block():
    dense = _dense()
    ids, mask = _batch()
    model = acmize(copy.deepcopy(dense), 4, init="random")
    config = ACMConfig(stage1_steps=300, stage1_lr=1e-2, token_batch=256)
    cache = cache_ffn(dense, ids, mask, max_tokens=400, seed=0)
    assert len(cache) == 2 and cache[0][0].shape == (384, 32)  # 32 rows × 12 real tokens
    x, y = cache[0]
    acm = acm_modules(model)[0]

    def rel(k: int) -> float:
        with torch.no_grad():
            return float((acm.partial_sums(x)[..., k, :] - y).pow(2).mean() / y.pow(2).mean())

    before = rel(4)
    stage1(model, cache, config, meta=_meta(config, ids, mask))
    assert rel(4) < 0.25 < before
    assert rel(0) == pytest.approx(1.0)


def test_budget_penalty_moves_mean_compute_toward_the_target():
    """Stage 3's budget term pushes the compute down for a low budget and up for a high one,
    from gates left mid-way by a short stage 2 (the nll loss leaves them there; ce's confident
    gates start near k = N, where there is nothing to raise)."""
    dense = _dense()
    ids, mask = _batch()
    base = acmize(copy.deepcopy(dense), 4)
    config = ACMConfig(stage2_steps=50, stage3_steps=40, stage3_lr=1e-2, budget_weight=1.0, token_batch=256,
                       stage2_loss="nll")
    cache = cache_ffn(dense, ids, mask, max_tokens=400, seed=0)
    stage2(base, cache, config, meta=_meta(config, ids, mask))
    base.eval()
    start = _fraction(base, ids, mask)
    low, high = copy.deepcopy(base), copy.deepcopy(base)
    stage3(low, dense, ids, mask, 0.1, config, meta=_meta(config, ids, mask))
    stage3(high, dense, ids, mask, 0.9, config, meta=_meta(config, ids, mask))
    assert _fraction(low, ids, mask) < start - 0.2
    assert _fraction(high, ids, mask) > start + 0.1


def _gated():
    """A tiny converted BERT after 30 stage-2 steps (eval mode), and its rows."""
    dense = _dense()
    ids, mask = _batch()
    model = acmize(copy.deepcopy(dense), 4).eval()
    config = ACMConfig(stage2_steps=30, token_batch=256)
    stage2(model, cache_ffn(dense, ids, mask, max_tokens=400, seed=0), config, meta=_meta(config, ids, mask))
    return model.eval(), ids, mask


@pytest.mark.parametrize("budget", [0.25, 0.5, 1.0])
def test_calibration_puts_the_inference_compute_at_the_budget(budget):
    """The gates' shift lands the argmax compute on the budget (1.0 included), as measured by
    the FLOP count of what ran on the rows it was fitted on; the shift is monotone in the budget."""
    model, ids, mask = _gated()
    other = copy.deepcopy(model)
    cal = calibrate_budget(model, ids, mask, budget, rows=len(ids))
    assert cal["fraction_after"] >= budget
    assert cal["fraction_after"] <= budget + 0.05
    # the saved state is what was calibrated: the FLOPs that ran = the learners' + every real token's gate
    shape = acm_modules(model)[0].shape
    gates = shape.gate_flops() / shape.dense_flops()
    assert _fraction(model, ids, mask) == pytest.approx(cal["fraction_after"] + gates, abs=1e-6)
    if budget < 1.0:
        assert calibrate_budget(other, ids, mask, budget + 0.2, rows=len(ids))["shift"] > cal["shift"]


def test_expected_routing_calibrates_an_offset_saved_and_reloaded(tmp_path):
    """``routing == "expected"``: calibration moves ``k_offset`` (the gate biases stay), the
    inference k is round(E[k] + offset) of the gate's softmax, and save/load keeps both."""
    from searchkd.supernets.acm.io import load_acm, save_acm

    model, ids, mask = _gated()
    for a in acm_modules(model):
        a.routing = "expected"
    biases = [a.gate[-1].bias.detach().clone() for a in acm_modules(model)]
    cal = calibrate_budget(model, ids, mask, 0.4, rows=len(ids))
    assert cal["routing"] == "expected" and not cal["bounded"]
    assert 0.4 <= cal["fraction_after"] <= 0.45
    acms = acm_modules(model)
    assert all(torch.equal(a.gate[-1].bias, b) for a, b in zip(acms, biases))
    assert all(a.k_offset == pytest.approx(cal["shift"]) for a in acms)
    x = torch.randn(50, acms[0].shape.hidden)
    with torch.no_grad():
        e = (acms[0].gate_logits(x).softmax(-1) * torch.arange(5)).sum(-1)
        assert torch.equal(acms[0].choose(x).argmax(-1), (e + acms[0].k_offset).round().clamp(0, 4).long())
    save_acm(model, tmp_path / "m", base={"id": "tiny"})
    again, meta = load_acm(tmp_path / "m")
    assert meta["routing"] == "expected"
    assert [a.routing for a in acm_modules(again)] == ["expected"] * len(acms)
    assert _fraction(again, ids, mask) == pytest.approx(_fraction(model, ids, mask))


def test_stage_resumes_from_its_checkpoint(tmp_path):
    dense = _dense()
    ids, mask = _batch()
    cache = cache_ffn(dense, ids, mask, max_tokens=400, seed=0)
    full = ACMConfig(stage1_steps=6, token_batch=64, checkpoint_every=3)
    a = acmize(copy.deepcopy(dense), 4, init="random")
    stage1(a, cache, full, meta=_meta(full, ids, mask))
    b = acmize(copy.deepcopy(dense), 4, init="random")
    half = ACMConfig(stage1_steps=3, token_batch=64, checkpoint_every=3)
    stage1(b, cache, half, meta=_meta(full, ids, mask), ckpt=tmp_path)
    c = acmize(copy.deepcopy(dense), 4, init="random")
    stage1(c, cache, full, meta=_meta(full, ids, mask), ckpt=tmp_path)
    for pa, pc in zip(acm_modules(a), acm_modules(c)):
        torch.testing.assert_close(pc.w1, pa.w1)
    with pytest.raises(SearchKDError, match="another base model"):
        stage1(c, cache, full, meta=stage_meta("other", full, data_id(ids, mask)), ckpt=tmp_path)


def test_save_reload_gives_identical_outputs(tmp_path):
    dense = _dense()
    ids, mask = _batch()
    model = acmize(copy.deepcopy(dense), 4)
    torch.manual_seed(3)
    for m in acm_modules(model):  # a gate that spreads tokens over k
        torch.nn.init.normal_(m.gate[-1].weight, std=3.0)
    with torch.no_grad(), set_token_mask(model, mask):
        before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    save_acm(model, tmp_path / "m", base={"id": "tiny"})
    again, meta = load_acm(tmp_path / "m", base_id="tiny")
    with torch.no_grad(), set_token_mask(again, mask):
        after = again(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(before, after)
    assert len({int(k) for m in acm_modules(again) for k in m.last_k.flatten()}) > 1
    with pytest.raises(SearchKDError, match="another base model"):
        load_acm(tmp_path / "m", base_id="other")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(SearchKDError, match="corrupt"):
        load_acm(tmp_path / "m")


def test_bad_inputs():
    with pytest.raises(SearchKDError, match="at least 2 learners"):
        acmize(_dense(), 1)
    with pytest.raises(SearchKDError, match="no feed-forward blocks"):
        acmize(torch.nn.Linear(3, 3), 4)
    with pytest.raises(SearchKDError, match="at least 2 learners"):
        ACMConfig(learners=1)
