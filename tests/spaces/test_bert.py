from __future__ import annotations

import numpy as np
import pytest

from searchkd.errors import SearchKDError
from searchkd.spaces import get_space
from searchkd.spaces.bert import BertArch, parse_arch

NAMES = ["bert-tiny", "bert-small", "bert-base"]
# AutoDistil's yaml files (KD_wiki_book_Seqlen128_PreModel_RndSampl_{Tiny,Small,Base}_256Subs.yaml)
PUBLISHED_RANGES = {"bert-tiny": (4_354_644, 10_566_675), "bert-small": (12_270_077, 27_842_492),
                    "bert-base": (38_503_232, 79_335_680)}


def all_archs(space):
    return [space.decode(v) for v in np.ndindex(*space.bounds())]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@pytest.mark.parametrize("name", NAMES)
def test_256_distinct_valid_archs(name):
    space = get_space(name)
    archs = all_archs(space)
    assert space.size() == len(set(archs)) == 256 and space.bounds() == [4, 4, 4, 4]
    assert all(space.validate(a) == a and space.decode(space.encode(a)) == a for a in archs)
    # minilm-l6 (22.7 M) is larger than every bert-tiny student only; the others need --teacher hf:DIR
    assert space.default_teacher == ("minilm-l6" if name == "bert-tiny" else "")


@pytest.mark.parametrize("name", NAMES)
def test_published_parameter_ranges_exactly(name):
    space = get_space(name)
    counts = [round(space.autodistil_params(a) * 1e6) for a in all_archs(space)]
    assert (min(counts), max(counts)) == PUBLISHED_RANGES[name]
    assert min(counts) == round(space.autodistil_params(str(space.smallest())) * 1e6)


def test_grids_and_head_size():
    tiny = get_space("bert-tiny")
    assert tiny.choices == ((4, 5, 6, 7), (128, 160, 192, 224), (7, 8, 9, 10), (2.0, 2.5, 3.0, 3.5))
    assert get_space("bert-small").choices[1] == (256, 288, 320, 352)
    assert get_space("bert-base").choices[2] == (9, 10, 11, 12)
    a = parse_arch("L4-H128-A7-R2.0")
    assert (a.head_dim, a.qkv, a.ffn) == (10, 70, 256)  # heads × hidden // 12
    assert str(a) == "L4-H128-A7-R2.0" and tiny.validate("L4-H128-A7-R2") == "L4-H128-A7-R2.0"


def test_known_model_sizes():
    # transformers' BertModel (with pooler): bert-base-uncased 109,482,240; all-MiniLM-L6-v2 22,713,216
    space = get_space("bert-base")
    assert round(space.cost("L12-H768-A12-R4.0")["params"] * 1e6) == 109_482_240
    assert round(space.cost("L6-H384-A12-R4.0")["params"] * 1e6) == 22_713_216


@pytest.mark.parametrize("arch, classes", [("L4-H128-A7-R2.0", 0), ("L7-H224-A10-R3.5", 0), ("L5-H160-A9-R2.5", 3)])
def test_cost_equals_counted_module(arch, classes):
    import torch

    from searchkd.spaces._bert_net import hook_macs

    space = get_space("bert-tiny")
    torch.manual_seed(0)
    net = space.build(arch, num_classes=classes).eval()
    model = net if classes else net.bert
    cost = space.cost(arch, num_classes=classes)
    assert round(cost["params"] * 1e6) == sum(p.numel() for p in model.parameters())
    macs = hook_macs(model, torch.randint(1, 30522, (1, 128)))
    assert cost["flops"] == pytest.approx(macs / 128 / 1e6, rel=1e-12)


def test_build_runs_text():
    import torch

    space = get_space("bert-tiny")
    torch.manual_seed(0)
    net = space.build("L4-H128-A7-R2.0", num_classes=5).eval()
    ids, mask = space.example_input(2, 9)
    assert space.modality == "text" and mask[1].tolist() == [1] * 4 + [0] * 5
    assert net(ids, mask).shape == (2, 5)
    assert net.forward_features(ids, mask).shape == (2, 9, 128)
    assert isinstance(net.classifier, torch.nn.Linear)


def test_hf_parameter_names():
    space = get_space("bert-tiny")
    names = set(space.build("L4-H128-A7-R2.0").state_dict())
    assert {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
            "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
            "bert.encoder.layer.3.attention.self.query.weight", "bert.encoder.layer.0.attention.self.value.bias",
            "bert.encoder.layer.0.attention.output.dense.weight", "bert.encoder.layer.0.attention.output.LayerNorm.bias",
            "bert.encoder.layer.0.intermediate.dense.weight", "bert.encoder.layer.0.output.dense.weight",
            "bert.encoder.layer.0.output.LayerNorm.weight", "bert.pooler.dense.weight", "classifier.weight"} <= names


def _tiny_net(layers=2, hidden=48, heads=4, head_dim=4, ffn=96, pooler=True):
    from searchkd.spaces._bert_net import BertNet, BertNetConfig, BertShape

    cfg = BertNetConfig(BertShape(layers, hidden, heads, head_dim, ffn), vocab_size=50, max_position=16,
                        dropout=0.0, pooler=pooler)
    return BertNet(cfg).eval()


def _batch():
    import torch

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0
    mask[2, 4:] = 0
    return ids * mask, mask


@pytest.mark.parametrize("sub", [(1, 24, 2, 2, 48), (2, 36, 3, 3, 72), (2, 48, 4, 4, 96), (1, 48, 1, 16, 10)])
def test_sliced_subnet_equals_extracted(sub):
    import torch

    from searchkd.spaces._bert_net import BertShape, extract

    torch.manual_seed(0)
    net = _tiny_net()
    for p in net.parameters():  # non-trivial LayerNorms and biases, so that slicing them matters
        torch.nn.init.normal_(p, std=0.3)
    shape = BertShape(*sub)
    ids, mask = _batch()
    with torch.no_grad():
        sliced = net(ids, mask, active=shape)
        alone = extract(net, shape)
        assert alone.config.shape == shape
        ref = alone(ids, mask)
        net.set_active(shape)
        again = net(ids, mask)
    assert sum(p.numel() for p in alone.parameters()) < sum(p.numel() for p in net.parameters()) or shape == net.config.shape
    for name in ("last_hidden_state", "pooler_output", "q", "k", "v"):
        a, b = getattr(sliced, name), getattr(ref, name)
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        torch.testing.assert_close(getattr(again, name), b, atol=1e-6, rtol=0)
    assert sliced.q.shape == (3, 11, shape.qkv) and sliced.last_hidden_state.shape == (3, 11, shape.hidden)


def test_shape_that_does_not_fit_is_refused():
    from searchkd.spaces._bert_net import BertShape

    with pytest.raises(ValueError, match="does not fit"):
        _tiny_net().set_active(BertShape(3, 48, 4, 4, 96))


def test_equals_transformers_bert_model():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    torch.manual_seed(0)
    net = _tiny_net(hidden=48, heads=4, head_dim=12)  # qkv == hidden: a plain BERT
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=96, max_position_embeddings=16, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12)
    hf = transformers.BertModel(cfg, add_pooling_layer=True).eval()
    missing, unexpected = hf.load_state_dict(net.state_dict(), strict=False)
    assert not unexpected and all("position_ids" in k or "token_type_ids" in k for k in missing)
    ids, mask = _batch()
    with torch.no_grad():
        ours, theirs = net(ids, mask), hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    keep = mask.bool()
    torch.testing.assert_close(ours.last_hidden_state[keep], theirs.last_hidden_state[keep], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.pooler_output, theirs.pooler_output, atol=1e-5, rtol=1e-5)
    # the last layer's input is transformers' second-to-last hidden state
    torch.testing.assert_close(ours.last_input[keep], theirs.hidden_states[-2][keep], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours.last_input[keep], ours.last_hidden_state[keep])

    # so the teacher agreement of both embeddings is the same for either implementation
    from searchkd.distill.text import TeacherAgreement

    class _Teacher:  # a fixed random embedding per token, mean of two more tokens' rows
        table = torch.randn(50, 6, generator=torch.Generator().manual_seed(1))

        def features(self, i, m):
            return type("F", (), {"hidden": self.table[i] + self.table[(i + 1) % 50]})()

    more_ids = torch.randint(1, 50, (40, 8), generator=torch.Generator().manual_seed(2))
    more_mask = torch.ones_like(more_ids)
    agree = TeacherAgreement(_Teacher(), (more_ids[:30], more_mask[:30]), (more_ids[30:], more_mask[30:]),
                             batch_size=16)
    a, b = agree(net), agree(hf)
    assert set(a) == {"embedding_cosine", "nn_agreement", "input_cosine", "input_nn_agreement"}
    assert a == pytest.approx(b, abs=1e-4) and a["embedding_cosine"] != a["input_cosine"]
    # the floor: a constant student's map is the teacher's mean fit embedding
    t_fit, t_held = agree.teacher
    mu = t_fit.mean(0)
    by_hand = float(np.mean(t_held @ mu / (np.linalg.norm(t_held, axis=1) * np.linalg.norm(mu))))
    assert agree.floor() == pytest.approx(by_hand, abs=1e-9)


@pytest.mark.parametrize("bad", ["", "L4-H128-A7", "L4-H128-A7-R2.0-X", "l4-h128-a7-r2.0", "L4-H128-A7-Rx", 3,
                                 "L0-H128-A7-R2.0", "L4-H8-A7-R2.0", "L4-H128-A7-R2.01"])
def test_malformed(bad):
    with pytest.raises(SearchKDError, match="bert-tiny"):
        get_space("bert-tiny").encode(bad)
    with pytest.raises(SearchKDError):
        get_space("bert-tiny").build(bad)


@pytest.mark.parametrize("arch", ["L8-H128-A7-R2.0", "L4-H144-A7-R2.0", "L4-H128-A11-R2.0", "L4-H128-A7-R4.0",
                                  "L12-H768-A12-R4.0"])
def test_outside_the_sub_space(arch):
    space = get_space("bert-tiny")
    for f in (space.encode, space.validate):
        with pytest.raises(SearchKDError, match="outside the sub-space"):
            f(arch)
    with pytest.raises(SearchKDError, match="out of range"):
        space.decode([4, 0, 0, 0])


def test_bert_arch_round_trip():
    assert parse_arch(str(BertArch(9, 352, 10, 4.0))) == BertArch(9, 352, 10, 4.0)


@pytest.mark.parametrize("strategy, kw", [("evolution", {}), ("random", {}), ("nsga2", {"objectives": ["params", "flops"]})])
def test_every_strategy_searches_bert(strategy, kw):
    import searchkd

    budget = 20 if strategy == "evolution" else 10
    r = searchkd.search(space="bert-tiny", proxy="params", strategy=strategy, budget=budget, progress=False, **kw)
    space = get_space("bert-tiny")
    assert r.trials == budget and space.validate(r.best.arch) == r.best.arch
    assert r.best.params == pytest.approx(space.cost(r.best.arch)["params"])
    if strategy == "nsga2":  # both objectives minimised: best (by the first) is on the front
        assert r.best.arch in [t.arch for t in r.pareto]
