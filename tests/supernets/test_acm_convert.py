"""``convert="attention"|"all"``: Q/K/V/O projections as ACMs (the authors' main run), checked
against an independent SVD (numpy), a hand FLOP count, the cost-weighted compute fraction,
the stage-1 cache and a save/reload round trip."""

from __future__ import annotations

import copy
import json

import pytest

from tests._text import need

need("transformers")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.supernets.acm.io import load_acm, save_acm  # noqa: E402
from searchkd.supernets.acm.model import (ACM, ACMShape, acm_modules, acm_sites, acmize, count_flops,  # noqa: E402
                                          linear_width, reset_flops, set_token_mask)
from searchkd.supernets.acm.stage3 import compute_fraction  # noqa: E402
from searchkd.supernets.acm.train import cache_modules  # noqa: E402

H, I, L, N = 32, 64, 2, 4
R = linear_width(H, H, N)  # 4: N·R = 16 = H / 2


def _dense(low_rank: bool = False) -> BertModel:
    """The tiny BERT of test_acm.py; ``low_rank``: every Q/K/V/O weight of rank N·R."""
    torch.manual_seed(0)
    config = BertConfig(hidden_size=H, num_hidden_layers=L, num_attention_heads=4, intermediate_size=I,
                        vocab_size=100, max_position_embeddings=32)
    model = BertModel(config).eval()
    if low_rank:
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for layer in model.encoder.layer:
                for lin in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value,
                            layer.attention.output.dense):
                    a, b = torch.randn(H, N * R, generator=g), torch.randn(N * R, H, generator=g)
                    lin.weight.copy_(a @ b / H)
                    lin.bias.copy_(torch.randn(H, generator=g) / 10)
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 100, (8, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[:, 12:] = 0
    return ids, mask


def test_authors_rank_makes_n_learners_cost_the_dense_projection():
    assert R == 4 and linear_width(384, 384, 4) == 48  # round(0.25·(d²+d)/(2d+1)) at d = 32, 384
    shape = ACMShape(hidden=384, intermediate=384, learners=4, width=48, gate_hidden=16, activation="identity",
                     kind="linear", min_k=1)
    assert 4 * shape.learner_flops() == shape.dense_flops() == 2 * 384 * 384


def test_projection_learners_are_the_truncated_svd():
    """k learners = the best rank-k·R approximation of the projection (Eckart–Young against
    numpy's singular values), so k = N reproduces a weight of rank ≤ N·R exactly."""
    for low_rank in (False, True):
        dense = _dense(low_rank)
        model = acmize(copy.deepcopy(dense), N, convert="attention")
        lin, acm = dense.encoder.layer[1].attention.self.key, model.encoder.layer[1].attention.self.key
        assert isinstance(acm, ACM) and acm.shape.min_k == 1
        w = lin.weight.detach().double().numpy()
        sv = np.linalg.svd(w, compute_uv=False)
        with torch.no_grad():
            maps = (acm.partial_sums(torch.eye(H)) - lin.bias).double().numpy()  # H×(N+1)×H: row i = W_k e_i
        for k in range(1, N + 1):
            err = np.linalg.norm(w - maps[:, k, :].T) ** 2
            assert err == pytest.approx(float((sv[k * R:] ** 2).sum()), rel=1e-4, abs=1e-8), (low_rank, k)
        if low_rank:
            x = torch.randn(5, 7, H)
            with torch.no_grad():
                torch.testing.assert_close(acm.partial_sums(x)[..., N, :], lin(x), rtol=0, atol=1e-5)


def test_every_learner_reproduces_a_low_rank_attention_model():
    dense = _dense(low_rank=True)
    ids, mask = _batch()
    for convert in ("attention", "all"):
        model = acmize(copy.deepcopy(dense), N, convert=convert).eval()
        assert len(acm_modules(model)) == L * (4 if convert == "attention" else 5)
        for m in acm_modules(model):
            m.force_k = N
        with torch.no_grad():
            a = dense(input_ids=ids, attention_mask=mask).last_hidden_state
            b = model(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


def test_stage1_cache_holds_each_projection_in_site_order():
    """Each cached (x, y) is the input and output of the module its ACM replaced: with
    low-rank projections every ACM at k = N maps its x onto its y."""
    dense = _dense(low_rank=True)
    ids, mask = _batch()
    model = acmize(copy.deepcopy(dense), N, convert="all")
    cache = cache_modules(dense, ids, mask, max_tokens=80, seed=0, convert="all")
    sites = acm_sites(model)
    assert len(cache) == len(sites) == L * 5 and all(len(x) == 80 for x, _ in cache)
    assert cache[0][0] is cache[1][0] is cache[2][0]  # Q, K, V read one tensor: one copy
    for acm, (x, y) in zip(sites, cache):
        if acm.shape.kind == "linear":
            with torch.no_grad():
                torch.testing.assert_close(acm.partial_sums(x)[..., N, :], y, rtol=0, atol=1e-5)


def test_flops_count_of_a_projection_matches_a_hand_count():
    torch.manual_seed(0)
    shape = ACMShape(hidden=24, intermediate=12, learners=4, width=3, gate_hidden=8, activation="identity",
                     kind="linear", min_k=1)
    acm = ACM(shape).eval()
    x = torch.randn(2, 5, 24)
    k = torch.tensor([[1, 1, 2, 3, 4], [4, 4, 2, 0, 0]])
    acm.token_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        assert acm.grouped(x, k).shape == (2, 5, 12)
    learner = 2 * 24 * 3 + 2 * 3 * 12
    gate = 2 * 24 * 8 + 2 * 8 * 8 + 2 * 8 * 4  # 4 choices: k = 1…4
    assert acm.flops == (1 + 1 + 2 + 3 + 4 + 4 + 4 + 2) * learner + 8 * gate
    assert shape.dense_flops() == 2 * 24 * 12


def test_model_flops_and_compute_fraction_weight_modules_by_cost():
    """Attention ACMs at k = N and FFN ACMs at k = 0: the compute is the projections' share of
    the converted FLOPs (4·2·H² of 4·2·H² + 4·H·I = 1/2), not the unweighted 4 of 5 ACMs."""
    dense = _dense()
    ids, _ = _batch()
    mask = torch.ones_like(ids)
    model = acmize(copy.deepcopy(dense), N, convert="all").eval()
    for m in acm_modules(model):
        m.force_k = N if m.shape.kind == "linear" else 0
    reset_flops(model)
    with torch.no_grad(), set_token_mask(model, mask):
        model(input_ids=ids, attention_mask=mask)
    flops = count_flops(model)
    assert flops["dense_flops_per_token"] == L * (4 * 2 * H * H + 4 * H * I)
    assert flops["fraction"] == pytest.approx(0.5)
    assert float(compute_fraction(model, mask)[0]) == pytest.approx(0.5)


def test_a_projection_gate_never_chooses_zero_learners():
    dense = _dense()
    ids, mask = _batch()
    model = acmize(copy.deepcopy(dense), N, convert="attention").eval()
    for m in acm_modules(model):
        assert m.gate[-1].out_features == N
        with torch.no_grad():
            m.gate[-1].bias.copy_(torch.tensor([50.0, 0, 0, 0]))  # the lowest choice
    with torch.no_grad(), set_token_mask(model, mask):
        model(input_ids=ids, attention_mask=mask)
    for m in acm_modules(model):
        assert set(m.last_k[mask.bool()].tolist()) == {1} and set(m.last_k[~mask.bool()].tolist()) == {0}
    model.train()
    model(input_ids=ids, attention_mask=mask)
    assert all(m.last_gate.shape[-1] == N + 1 and float(m.last_gate.detach()[..., 0].abs().sum()) == 0
               for m in acm_modules(model))


@pytest.mark.parametrize("convert", ["attention", "all"])
def test_save_reload_round_trip(tmp_path, convert):
    dense = _dense()
    ids, mask = _batch()
    model = acmize(copy.deepcopy(dense), N, convert=convert).eval()
    torch.manual_seed(3)
    for m in acm_modules(model):  # gates that spread tokens over k
        torch.nn.init.normal_(m.gate[-1].weight, std=3.0)
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    save_acm(model, tmp_path / "m", base={"id": "tiny"})
    meta = json.loads((tmp_path / "m" / "acm.json").read_text())
    assert meta["convert"] == convert and meta["modules"] == len(acm_modules(model))
    assert meta["attention_shape"]["kind"] == "linear" and meta["layers"] == L
    again, _ = load_acm(tmp_path / "m", base_id="tiny")
    with torch.no_grad():
        after = again(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(before, after)
    assert [m.shape for m in acm_modules(again)] == [m.shape for m in acm_modules(model)]
    assert len({int(k) for m in acm_modules(again) for k in m.last_k[mask.bool()].flatten()}) > 1
    meta["convert"] = "ffn"  # a record that does not match the weights: refused, not half-loaded
    (tmp_path / "m" / "acm.json").write_text(json.dumps(meta))
    with pytest.raises(SearchKDError, match="corrupt"):
        load_acm(tmp_path / "m")


def test_a_folder_saved_before_convert_was_recorded_loads_as_ffn(tmp_path):
    dense = _dense()
    model = acmize(copy.deepcopy(dense), N)
    save_acm(model, tmp_path / "m", base={"id": "tiny"})
    meta = json.loads((tmp_path / "m" / "acm.json").read_text())
    assert meta["convert"] == "ffn" and "attention_shape" not in meta
    for key in ("convert", "modules"):
        del meta[key]
    meta["shape"] = {k: v for k, v in meta["shape"].items() if k not in ("kind", "min_k")}
    (tmp_path / "m" / "acm.json").write_text(json.dumps(meta))
    again, _ = load_acm(tmp_path / "m")
    assert len(acm_modules(again)) == L and all(m.shape.kind == "ffn" for m in acm_modules(again))


def test_bad_convert():
    with pytest.raises(SearchKDError, match="unknown ACM convert"):
        acmize(_dense(), N, convert="qkv")
    from searchkd.supernets.acm.train import ACMConfig

    with pytest.raises(SearchKDError, match="--convert must be one of"):
        ACMConfig(convert="both")
