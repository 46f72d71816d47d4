from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.spaces._bert_net import BertNet, BertNetConfig, BertShape  # noqa: E402
from searchkd.spaces.bert import BertSpace  # noqa: E402
from searchkd.supernets import SuperLM, SuperLMConfig, relation_loss  # noqa: E402

VOCAB = 40


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def toy_space(name="toy", hidden=(24, 48)):
    return BertSpace(layers=(1, 2), hidden=hidden, heads=(2, 4), ratios=(1.0, 2.0), name=name,
                     vocab_size=VOCAB, max_position=16)


class Teacher:
    """A fixed random 2-layer BERT (qkv 32, 4 heads), peaked relations; counts its calls."""

    def __init__(self, fail_at: int | None = None) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(123)
            self.net = BertNet(BertNetConfig(BertShape(2, 32, 4, 8, 64), vocab_size=VOCAB, max_position=16,
                                             dropout=0.0, pooler=False)).eval()
            for p in self.net.parameters():
                torch.nn.init.normal_(p, std=0.3)
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, ids, mask):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        out = self.net(ids, mask)
        return out.q, out.k, out.v


def data(n=24, t=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, t), generator=g)
    lengths = torch.randint(3, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None] < lengths[:, None]).long()
    return ids * mask, mask


def config(**kw):
    base = dict(steps=6, batch_size=8, lr=3e-3, relation_heads=4, checkpoint_every=2, warmup_steps=2)
    return SuperLMConfig(**{**base, **kw})


def loop_loss(teacher, student, mask, heads, kind):
    """The relation loss by explicit Python loops over examples, relation heads and tokens."""
    total = 0.0
    for t, s in zip(teacher, student):
        acc, count = 0.0, 0
        for b in range(mask.shape[0]):
            valid = [i for i in range(mask.shape[1]) if mask[b, i]]
            for a in range(heads):
                rel = []
                for x in (t, s):
                    d = x.shape[-1] // heads
                    v = x[b, :, a * d:(a + 1) * d].double()
                    rel.append([[float(v[i] @ v[j]) / math.sqrt(d) for j in valid] for i in valid])
                rt, rs = rel
                for i in range(len(valid)):
                    if kind == "minilmv2":
                        zt = [math.exp(x) for x in rt[i]]
                        zs = [math.exp(x) for x in rs[i]]
                        pt = [z / sum(zt) for z in zt]
                        ps = [z / sum(zs) for z in zs]
                        acc += sum(p * math.log(p / q) for p, q in zip(pt, ps))
                        count += 1
                    else:
                        acc += sum((y - x) ** 2 for x, y in zip(rt[i], rs[i]))
                        count += len(valid)
        total += acc / count
    return total


@pytest.mark.parametrize("kind", ["minilmv2", "autodistil"])
def test_relation_loss_equals_explicit_loop(kind):
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    teacher = [torch.randn(3, 5, 12, generator=g) for _ in range(3)]  # 3 relation heads of 4 dims
    student = [torch.randn(3, 5, 7, generator=g) for _ in range(3)]  # 3 of 2 dims (the 7th is left out)
    got = relation_loss(teacher, student, mask, heads=3, kind=kind)
    assert float(got) == pytest.approx(loop_loss(teacher, student, mask, 3, kind), rel=1e-5)
    assert float(relation_loss(teacher, teacher, mask, heads=3, kind=kind)) == pytest.approx(0.0, abs=1e-6)


def test_relation_loss_ignores_padding_and_rejects_narrow_widths():
    g = torch.Generator().manual_seed(1)
    mask = torch.tensor([[1, 1, 1, 0]])
    t = [torch.randn(1, 4, 8, generator=g) for _ in range(3)]
    s = [torch.randn(1, 4, 8, generator=g) for _ in range(3)]
    s2 = [x.clone() for x in s]
    for x in s2:
        x[:, 3] = 100.0  # whatever sits at the padding position
    for kind in ("minilmv2", "autodistil"):
        assert float(relation_loss(t, s, mask, heads=2, kind=kind)) == pytest.approx(
            float(relation_loss(t, s2, mask, heads=2, kind=kind)), rel=1e-6)
    with pytest.raises(SearchKDError, match="relation heads"):
        relation_loss(t, [x[..., :1] for x in s], mask, heads=2)
    with pytest.raises(SearchKDError, match="unknown relation loss"):
        relation_loss(t, s, mask, kind="mse")


def test_sandwich_and_extract():
    lm = SuperLM(toy_space(), Teacher(), teacher="toy", config=config(), device="cpu")
    picks = [[str(a) for a in lm.sandwich(s)] for s in range(6)]
    assert all(p[0] == "L2-H48-A4-R2.0" and p[1] == "L1-H24-A2-R1.0" for p in picks)
    assert all(len(set(p)) == 4 for p in picks) and len({tuple(p[2:]) for p in picks}) > 1
    assert picks == [[str(a) for a in SuperLM(toy_space(), None, teacher="x", config=config()).sandwich(s)] for s in range(6)]
    ids, mask = data(4)
    lm.net.eval()
    with torch.no_grad():
        for arch in ("L1-H24-A2-R1.0", "L2-H24-A4-R2.0", "L2-H48-A4-R2.0"):
            sub = lm.extract(arch).eval()
            a, b = lm.net(ids, mask, active=lm.space.arch(arch).shape()), sub(ids, mask)
            torch.testing.assert_close(a.q, b.q, atol=1e-6, rtol=0)
            torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, atol=1e-6, rtol=0)


def test_resume_equals_uninterrupted(tmp_path):
    ids, mask = data()
    whole = SuperLM(toy_space(), Teacher(), teacher="toy", config=config(), device="cpu")
    ref = whole.train(ids, mask, out_dir=tmp_path / "a")

    first = SuperLM(toy_space(), Teacher(), teacher="toy", config=config(), device="cpu")
    part = first.train(ids, mask, out_dir=tmp_path / "b", until=3)  # stops (and saves) at step 3
    crashed = SuperLM(toy_space(), Teacher(fail_at=3), teacher="toy", config=config(), device="cpu")
    with pytest.raises(KeyboardInterrupt):  # killed in step 5: the step-4 checkpoint is the last
        crashed.train(ids, mask, out_dir=tmp_path / "b")
    resumed = SuperLM(toy_space(), Teacher(), teacher="toy", config=config(), device="cpu")
    rest = resumed.train(ids, mask, out_dir=tmp_path / "b")

    assert (part["step"], rest["step"], ref["step"]) == (3, 6, 6)
    assert part["history"] == ref["history"][:3] and rest["history"] == ref["history"][4:]
    a, b = whole.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = whole.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6 and state["scheduler"]["last_epoch"] == 6


def test_training_lowers_held_out_loss_of_largest_and_smallest():
    ids, mask = data(64, seed=0)
    held_ids, held_mask = data(32, seed=1)
    lm = SuperLM(toy_space(), Teacher(), teacher="toy", config=config(steps=40, checkpoint_every=0), device="cpu")
    archs = [str(lm.space.largest()), str(lm.space.smallest())]
    before = lm.score_many(archs, held_ids, held_mask)
    out = lm.train(ids, mask)
    after = lm.score_many(archs, held_ids, held_mask)
    assert all(a < 0.7 * b for a, b in zip(after, before)), (before, after)
    assert out["tokens_per_s"] > 0 and len(out["history"]) == 40
    assert lm.score(archs[0], held_ids, held_mask) == pytest.approx(after[0])


def test_checkpoint_refusals_and_reload(tmp_path):
    ids, mask = data()
    lm = SuperLM(toy_space(), Teacher(), teacher="teacher-a", config=config(steps=2), device="cpu")
    lm.train(ids, mask, out_dir=tmp_path)
    with pytest.raises(SearchKDError, match="another teacher"):
        SuperLM(toy_space(), Teacher(), teacher="teacher-b", config=config(steps=2)).train(ids, mask, out_dir=tmp_path)
    with pytest.raises(SearchKDError, match="another sub-space"):
        SuperLM(toy_space("toy2"), Teacher(), teacher="teacher-a", config=config(steps=2)).train(ids, mask, out_dir=tmp_path)
    with pytest.raises(SearchKDError, match="another grid"):
        SuperLM(toy_space(hidden=(24, 36)), Teacher(), teacher="teacher-a",
                config=config(steps=2)).train(ids, mask, out_dir=tmp_path)
    with pytest.raises(SearchKDError, match="other settings .*lr"):
        SuperLM(toy_space(), Teacher(), teacher="teacher-a", config=config(steps=2, lr=1e-3)).train(ids, mask, out_dir=tmp_path)
    with pytest.raises(SearchKDError, match="other data"):
        SuperLM(toy_space(), Teacher(), teacher="teacher-a", config=config(steps=2)).train(ids.flip(0), mask.flip(0),
                                                                                           out_dir=tmp_path)
    with pytest.raises(SearchKDError, match="another teacher"):
        SuperLM.load(tmp_path, Teacher(), teacher="teacher-b")
    again = SuperLM.load(tmp_path, Teacher(), teacher="teacher-a", device="cpu")
    assert again.step == 2 and again.space.name == "toy" and again.config == lm.config
    arch = "L2-H24-A2-R2.0"
    assert again.score(arch, ids, mask) == lm.score(arch, ids, mask)


@pytest.mark.parametrize("bad", [
    lambda ids, mask: (ids[:4], mask[:4]),             # fewer sequences than a batch
    lambda ids, mask: (ids + VOCAB, mask),             # token ids outside the vocabulary
    lambda ids, mask: (ids, mask[:, :5]),              # shapes differ
    lambda ids, mask: (ids, mask * 0),                 # an empty sequence
])
def test_bad_data(bad):
    lm = SuperLM(toy_space(), Teacher(), teacher="toy", config=config())
    with pytest.raises(SearchKDError, match="SuperLM data"):
        lm.train(*bad(*data()))


def test_bad_settings():
    with pytest.raises(SearchKDError, match="unknown relation loss"):
        SuperLMConfig(loss="kl")
    with pytest.raises(SearchKDError, match="steps"):
        SuperLMConfig(steps=0)
    with pytest.raises(SearchKDError, match="outside the sub-space"):
        SuperLM(toy_space(), None, teacher="x").score("L3-H24-A2-R1.0", *data())
    with pytest.raises(SearchKDError, match="no teacher_qkv"):
        SuperLM(toy_space(), None, teacher="x").score("L1-H24-A2-R1.0", *data())
    with pytest.raises(SearchKDError, match="BERT space"):
        SuperLM("resnet_cifar", None, teacher="x")


@pytest.mark.gpu
def test_cuda_bf16_step():  # skipped without CUDA by the gpu marker (tests/conftest.py)
    ids, mask = data()
    teacher = Teacher()
    teacher.net.cuda()
    lm = SuperLM(toy_space(), teacher, teacher="toy", config=config(steps=3), device="cuda")
    out = lm.train(ids, mask)
    assert out["step"] == 3 and all(np.isfinite(out["history"]))
    assert lm.score("L1-H24-A2-R1.0", ids, mask) > 0


def test_the_last_layer_after_its_qkv_gets_no_training():
    """The relation loss reads the last layer's Q/K/V: its attention output and feed-forward
    block keep their init (the fact behind TeacherAgreement's ``input_cosine``), while the
    layer below them and the Q/K/V do train."""
    space = BertSpace(layers=(2,), hidden=(24,), heads=(2,), ratios=(2.0,), name="one", vocab_size=VOCAB,
                      max_position=16)
    lm = SuperLM(space, Teacher(), teacher="toy", config=config(steps=3, checkpoint_every=0, weight_decay=0.1))
    before = {k: v.clone() for k, v in lm.net.state_dict().items()}
    lm.train(*data(), progress=False)
    after = lm.net.state_dict()
    frozen = [k for k in before if k.startswith("encoder.layer.1.") and ".self." not in k]
    trained = [k for k in before if k.endswith("weight") and (k.startswith("encoder.layer.0.") or ".1.attention.self." in k)]
    assert len(frozen) == 10 and len(trained) == 11
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert all(not torch.equal(before[k], after[k]) for k in trained)


def test_sandwich_dedupes_a_one_arch_space():
    arch = "L2-H24-A2-R1.0"
    lm = SuperLM.standalone(toy_space(), arch, Teacher(), teacher="toy", config=config(), device="cpu")
    assert lm.space.name == f"toy/{arch}" and lm.space.vocab_size == VOCAB
    assert all([str(a) for a in lm.sandwich(s)] == [arch] for s in range(5))
    two = BertSpace(layers=(1, 2), hidden=(24,), heads=(2,), ratios=(1.0,), name="two", vocab_size=VOCAB, max_position=16)
    assert [str(a) for a in SuperLM(two, None, teacher="x", config=config()).sandwich(0)] == ["L2-H24-A2-R1.0",
                                                                                             "L1-H24-A2-R1.0"]


def test_standalone_from_inherited_weights_starts_at_the_supernets_loss(tmp_path):
    ids, mask = data(32, seed=0)
    held = data(16, seed=1)
    lm = SuperLM(toy_space(), Teacher(), teacher="toy", config=config(steps=4), device="cpu")
    lm.train(ids, mask)
    arch = "L2-H24-A4-R1.0"
    one = SuperLM.standalone(lm.space, arch, Teacher(), teacher="toy", config=config(steps=3), init=lm.extract(arch),
                             device="cpu")
    assert one.score(arch, *held) == pytest.approx(lm.score(arch, *held), rel=1e-6)
    calls = Teacher()
    one.teacher_qkv = calls
    out = one.train(ids, mask, out_dir=tmp_path / "s")
    assert out["step"] == 3 and calls.calls == 3  # one teacher call and one subnet a step
    assert one.score(arch, *held) != pytest.approx(lm.score(arch, *held), rel=1e-6)
    # a checkpoint remembers the weights it started from
    again = SuperLM.standalone(lm.space, arch, Teacher(), teacher="toy", config=config(steps=3),
                               init=lm.extract(arch), device="cpu")
    assert again.train(ids, mask, out_dir=tmp_path / "s")["history"] == []
    with pytest.raises(SearchKDError, match="initial weights"):
        SuperLM.standalone(lm.space, arch, Teacher(), teacher="toy", config=config(steps=3)).train(
            ids, mask, out_dir=tmp_path / "s")
    assert SuperLM.load(tmp_path / "s", Teacher(), teacher="toy").score(arch, *held) == one.score(arch, *held)
    with pytest.raises(SearchKDError, match="another shape"):
        SuperLM.standalone(lm.space, "L1-H24-A4-R1.0", None, teacher="toy", init=lm.extract(arch))
