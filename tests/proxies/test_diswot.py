from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import searchkd
from searchkd.errors import SearchKDError
from searchkd.proxies import Scorer, diswot
from searchkd.spaces import get_space
from searchkd.spaces._net import ClassifierNet


class Tiny(ClassifierNet):
    def __init__(self, width: int = 6, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.classifier = nn.Linear(width, classes)

    def forward_features(self, x):
        return torch.relu(self.bn(self.conv(x)))


def _batch(n=8, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.arange(n) % classes


def test_closed_form_classifier_gradient_equals_autograd():
    torch.manual_seed(0)
    net = Tiny()
    x, y = _batch()
    feats, pooled, logits = diswot._forward(net, x)
    ours = diswot.classifier_grad(pooled, logits, y)
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    assert torch.allclose(ours, net.classifier.weight.grad, atol=1e-6)


def test_semantic_matrices_against_explicit_loops():
    g = torch.randn(3, 5)
    chan, cls = diswot.semantic_matrices(g)
    for k in range(3):
        outer = np.outer(g[k].numpy(), g[k].numpy())
        for i in range(5):
            row = outer[i] / max(np.linalg.norm(outer[i]), 1e-12)
            assert np.allclose(chan[k, i].numpy(), row, atol=1e-6)
    gram = g.numpy() @ g.numpy().T
    assert np.allclose(cls.numpy(), gram / np.linalg.norm(gram, axis=1, keepdims=True), atol=1e-6)


def test_relation_gram_against_explicit_loop():
    f = torch.randn(4, 2, 3, 3)
    g = diswot.relation_gram(f).numpy()
    flat = f.reshape(4, -1).numpy()
    for i in range(4):
        row = np.array([flat[i] @ flat[j] for j in range(4)])
        assert np.allclose(g[i], row / np.linalg.norm(row), atol=1e-5)


def test_score_by_hand_on_a_tiny_pair():
    torch.manual_seed(1)
    t, s = Tiny(), Tiny()
    batch = _batch()
    state = diswot.prepare(t, batch, diswot.with_config(init="default"))
    got = diswot.score(s, batch, state)
    # the same quantities by hand with autograd gradients
    def parts(net):
        net.zero_grad()
        x, y = batch
        f = net.forward_features(x)
        nn.functional.cross_entropy(net.forward_head(f), y).backward()
        g = net.classifier.weight.grad.detach().numpy()
        mats = np.stack([np.outer(r, r) / np.linalg.norm(np.outer(r, r), axis=1, keepdims=True) for r in g])
        flat = f.detach().reshape(len(y), -1).numpy()
        gram = flat @ flat.T
        return mats, gram / np.linalg.norm(gram, axis=1, keepdims=True)

    mt, gt = parts(t)
    ms, gs = parts(s)
    assert got["semantic"] == pytest.approx(-((mt - ms) ** 2).sum() / (3 * 6 * 6), rel=1e-4)
    ref = diswot.score(s, batch, diswot.prepare(t, batch, diswot.with_config(init="default", semantic_norm="reference")))
    assert ref["semantic"] == pytest.approx(-((mt - ms) ** 2).sum() / (3 * 6), rel=1e-4)
    assert got["relation"] == pytest.approx(-((gt - gs) ** 2).sum() / 64, rel=1e-4)


def test_widths_differ_auto_drops_the_semantic_term_class_form_on_request():
    torch.manual_seed(2)
    batch = _batch()
    t, st = Tiny(width=6), Tiny(width=4)
    with pytest.warns(RuntimeWarning, match="semantic term is dropped"):
        parts = diswot.score(st, batch, diswot.prepare(t, batch, diswot.with_config(init="default")))
    assert parts["semantic"] == 0.0 and parts["relation"] < 0
    cls = diswot.score(st, batch, diswot.prepare(t, batch, diswot.with_config(init="default", semantic_form="class")))
    assert cls["relation"] == parts["relation"] and cls["semantic"] < 0
    with pytest.raises(ValueError, match="equal teacher and student widths"):
        diswot.score(st, batch, diswot.prepare(t, batch, diswot.with_config(semantic_form="channel")))


@pytest.mark.parametrize("proxy", ["diswot", "diswot_semantic", "diswot_relation"])
def test_teacher_against_itself_is_the_maximum(proxy):
    space = get_space("resnet_cifar")
    torch.manual_seed(0)
    teacher = space.build("1-1-1")
    batch = _batch(16, 10)
    scorer = Scorer([proxy], batch, teacher=teacher, num_classes=10)
    assert scorer.score_net(teacher)[proxy] == pytest.approx(0.0, abs=1e-7)
    other = scorer.score_arch(space, "2-1-2")["scores"][proxy]
    assert other < 0


def test_teacher_weights_and_caller_rng_untouched_and_deterministic():
    space = get_space("nb201")
    torch.manual_seed(0)
    teacher = space.build(space.sample(1))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    batch = _batch(16, 10)
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    a = Scorer(["diswot", "diswot_reference"], batch, teacher=teacher, seed=5).score_arch(space, space.sample(2))
    assert torch.equal(torch.get_rng_state(), rng_before)
    b = Scorer(["diswot", "diswot_reference"], batch, teacher=teacher, seed=5).score_arch(space, space.sample(2))
    assert a["scores"] == b["scores"]
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_reference_init_is_standard_normal():
    torch.manual_seed(0)
    net = diswot.gaussian_init(get_space("resnet_cifar").build("1-1-1"))
    w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, nn.Conv2d)])
    assert abs(float(w.mean())) < 0.02 and abs(float(w.std()) - 1) < 0.02
    assert all(float(m.weight.min()) == 1 for m in net.modules() if isinstance(m, nn.BatchNorm2d))


def test_bad_input():
    space = get_space("resnet_cifar")
    teacher = space.build("1-1-1", num_classes=10)
    with pytest.raises(SearchKDError, match="needs a teacher"):
        Scorer(["diswot"], _batch(8, 10))
    with pytest.raises(SearchKDError, match="class counts must match"):
        Scorer(["diswot"], _batch(8, 10), teacher=teacher, num_classes=100)
    with pytest.raises(SearchKDError, match="empty"):
        Scorer(["diswot"], (torch.zeros(0, 3, 8, 8), torch.zeros(0, dtype=torch.long)), teacher=teacher)
    scorer = Scorer(["diswot"], _batch(8, 10), teacher=teacher)
    with pytest.raises(SearchKDError, match="student has 100 classes"):
        scorer.score_net(space.build("1-1-1", num_classes=100))
    with pytest.raises(SearchKDError, match="classifier"):
        scorer.score_net(nn.Sequential(nn.Flatten(), nn.Linear(192, 10)))
    with pytest.raises(SearchKDError, match="unknown proxy 'diswat'; did you mean 'diswot'"):
        Scorer(["diswat"], _batch(8, 10), teacher=teacher)


def test_public_score_api():
    v = searchkd.score("1-1-1", teacher="resnet_cifar:2-2-2", proxy="diswot", space="resnet_cifar", seed=0)
    w = searchkd.score("1-1-1", teacher="resnet_cifar:2-2-2", proxy="diswot", space="resnet_cifar", seed=0)
    assert v == w and v < 0
    torch.manual_seed(0)
    t = get_space("resnet_cifar").build("1-1-1")
    assert searchkd.score(t, teacher=t, proxy="diswot") == pytest.approx(0.0, abs=1e-7)


def test_reference_reinit_draws_teacher_and_student_from_independent_streams():
    # the N(0,1) re-initialisation must not give the teacher's own arch the teacher's weights
    space = get_space("resnet_cifar")
    teacher = space.build("1-1-1")
    scorer = Scorer(["diswot_reference"], _batch(16, 10), teacher=teacher, num_classes=10)
    assert scorer.score_net(teacher)["diswot_reference"] < -1e-4


def test_students_share_no_weights_with_the_teacher():
    """A cell that differs from the teacher only in a parameter-free op has the same parameter
    shapes in the same order: with a shared seed every tensor would be equal."""
    from searchkd.evaluate import EvalConfig, Evaluator
    from searchkd.registry import TEACHERS

    t_arch = TEACHERS.get("nb201-best").arch
    s_arch = t_arch.replace("skip_connect~0", "none~0")
    ev = Evaluator(EvalConfig("nb201", ("diswot",), teacher="nb201-best", batch_size=8, seed=3))
    scorer = ev.scorer
    with torch.random.fork_rng():
        torch.manual_seed(scorer.seed)  # how the engine builds every student
        student = ev.space.build(s_arch, num_classes=10)
    t_params, s_params = dict(scorer.teacher.named_parameters()), dict(student.named_parameters())
    assert t_params.keys() == s_params.keys()
    weights = [k for k in t_params if t_params[k].dim() >= 2]  # conv and linear: the randomly drawn ones
    assert len(weights) > 10 and not any(torch.equal(t_params[k], s_params[k]) for k in weights)
