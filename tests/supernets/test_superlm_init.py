"""A SuperLM initialised from a pretrained BERT: evenly spaced layers, heads and FFN units
cut from the pretrained matrices, and the sandwich's uniform draw of the middle subnets."""

from __future__ import annotations

import collections
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _text import need  # noqa: E402

from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.spaces._bert_net import BertShape, kept_layers  # noqa: E402
from searchkd.spaces.bert import BertSpace  # noqa: E402
from searchkd.supernets import SuperLM, SuperLMConfig  # noqa: E402
from searchkd.supernets.superlm_init import cut_problem, layer_map, pretrained_shape  # noqa: E402

VOCAB = 50


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@pytest.fixture(scope="module")
def pretrained():
    """A random 4-layer transformers BertModel, hidden 24 = 12 heads × 2 (the space's head
    geometry hidden // 12, so a space shape can coincide with it), FFN 48."""
    need("transformers")
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=VOCAB, hidden_size=24, num_hidden_layers=4, num_attention_heads=12,
                                 intermediate_size=48, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                 attention_probs_dropout_prob=0.0, attn_implementation="eager")).eval()
    with torch.no_grad():  # large enough weights that a wrong cut shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


def space(layers=(1, 2, 4), hidden=(12, 24), heads=(6, 12), ratios=(1.0, 2.0)):
    return BertSpace(layers=layers, hidden=hidden, heads=heads, ratios=ratios, name="cut", vocab_size=VOCAB,
                     max_position=32)


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 5:] = 0
    return ids * mask, mask


def test_layer_map_is_evenly_spaced_and_grows_by_repeating():
    assert kept_layers(12, 6) == [0, 2, 4, 6, 8, 10]  # AutoDistil's floor(i / depth_mult), depth_mult 1/2
    assert kept_layers(7, 4) == [0, 1, 3, 5]
    assert layer_map(4, 12) == [0, 3, 6, 9] and layer_map(6, 6) == list(range(6))
    # bert-tiny's 7 layers from MiniLM's 6: the 6-layer subnet runs the pretrained stack in order
    assert layer_map(7, 6) == [0, 1, 2, 3, 4, 5, 5]
    assert [layer_map(7, 6)[i] for i in kept_layers(7, 6)] == [0, 1, 2, 3, 4, 5]
    mini = BertShape(6, 384, 12, 32, 1536)
    assert cut_problem(BertShape(7, 224, 10, 18, 784), mini) is None  # bert-tiny's largest
    assert cut_problem(BertShape(12, 352, 10, 29, 1408), mini) is None
    assert "head size 53 > 32" in cut_problem(BertShape(12, 640, 12, 53, 2560), mini)


@pytest.mark.parametrize("reorder", [False, True])
def test_the_largest_subnet_reproduces_the_pretrained_model(pretrained, reorder):
    sp = space()
    lm = SuperLM(sp, None, teacher="t", device="cpu", config=SuperLMConfig(dropout=0.0, init="teacher", reorder=reorder),
                 pretrained=(pretrained.state_dict(), pretrained_shape(pretrained.config)))
    ids, mask = batch()
    lm.net.eval()
    with torch.no_grad():
        ref = pretrained(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        full = lm.net(ids, mask)  # L4-H24-A12-R2.0: the pretrained shape exactly
        torch.testing.assert_close(full.last_hidden_state, ref[-1], atol=1e-5, rtol=1e-5)
        # two layers at the full width: layers ⌊i·4/2⌋ = 0, 2 of the pretrained stack (not 0, 1)
        two = copy.deepcopy(pretrained)
        two.encoder.layer = torch.nn.ModuleList([two.encoder.layer[0], two.encoder.layer[2]])
        two.config.num_hidden_layers = 2
        ref2 = two(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(lm.net(ids, mask, active=sp.arch("L2-H24-A12-R2.0").shape()).last_hidden_state, ref2,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lm.extract("L2-H24-A12-R2.0").eval()(ids, mask).last_hidden_state, ref2,
                                   atol=1e-5, rtol=1e-5)
        # the exported student of the largest arch is the pretrained model too
        torch.testing.assert_close(lm.extract("L4-H24-A12-R2.0").eval()(ids, mask).last_hidden_state, ref[-1],
                                   atol=1e-5, rtol=1e-5)
    random = SuperLM(sp, None, teacher="t", device="cpu", config=SuperLMConfig(dropout=0.0)).net.eval()
    with torch.no_grad():
        assert (random(ids, mask).last_hidden_state - ref[-1]).abs().max() > 0.1
    assert lm.init_id is not None


def test_narrow_subnets_take_the_pretrained_heads_they_cut(pretrained):
    """Head-aligned cut: a subnet head of 1 dim is the first dim of the pretrained head, so its
    Q equals those rows of the pretrained Q (not rows re-split across heads)."""
    sp = space()
    lm = SuperLM(sp, None, teacher="t", device="cpu", config=SuperLMConfig(dropout=0.0, init="teacher"),
                 pretrained=(pretrained.state_dict(), pretrained_shape(pretrained.config)))
    w = pretrained.state_dict()["encoder.layer.2.attention.self.query.weight"]
    sub = lm.extract("L4-H12-A6-R1.0")  # head_dim 1, 6 heads
    torch.testing.assert_close(sub.state_dict()["encoder.layer.2.attention.self.query.weight"], w[0:12:2, :12])
    with pytest.raises(SearchKDError, match="cannot be cut"):
        SuperLM(space(hidden=(12, 36)), None, teacher="t", device="cpu",
                pretrained=(pretrained.state_dict(), pretrained_shape(pretrained.config)))


def test_sandwich_draws_every_middle_subnet_uniformly():
    lm = SuperLM(space(layers=(1, 2, 3)), None, teacher="t", device="cpu", config=SuperLMConfig(seed=3))
    big, small = str(lm.space.largest()), str(lm.space.smallest())
    middle = [a for a in lm._archs if a not in (big, small)]
    counts = collections.Counter()
    steps = 3000
    for step in range(steps):
        picks = [str(a) for a in lm.sandwich(step)]
        assert picks[:2] == [big, small] and len(set(picks)) == 4
        counts.update(picks[2:])
    assert set(counts) == set(middle)  # every middle subnet is trained
    expected = 2 * steps / len(middle)
    chi2 = sum((counts[a] - expected) ** 2 / expected for a in middle)
    # chi-square with len(middle) - 1 = 21 degrees of freedom: its 99.9th percentile is 46.8
    assert len(middle) == 22 and chi2 < 46.8, (chi2, counts.most_common(3), counts.most_common()[-3:])
    assert np.isclose(sum(counts.values()), 2 * steps)
