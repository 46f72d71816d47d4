"""KD, SP and ICKD losses against hand computations and explicit loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchkd.distill.losses import ICKD, ickd_loss, kd_loss, parse_feature_losses, sp_loss
from searchkd.errors import SearchKDError


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_kd_loss_matches_a_hand_computation_on_2x3() -> None:
    s = np.array([[1.0, 2.0, 0.5], [0.2, -1.0, 3.0]])
    t = np.array([[2.0, 0.0, 1.0], [-0.5, 1.5, 0.5]])
    y = np.array([1, 2])
    T, w = 4.0, 0.9
    ce = -np.mean(np.log(_softmax(s)[np.arange(2), y]))
    p_t, p_s = _softmax(t / T), _softmax(s / T)
    kl = np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1))
    want = (1 - w) * ce + w * T * T * kl
    got = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), temperature=T, kd_weight=w)
    assert got.item() == pytest.approx(want, rel=1e-6)
    # without a teacher (or with weight 0) it is the cross-entropy
    assert kd_loss(torch.tensor(s), None, torch.tensor(y)).item() == pytest.approx(ce, rel=1e-6)
    assert kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), kd_weight=0.0).item() == pytest.approx(ce, rel=1e-6)


def test_kd_loss_is_zero_kl_when_student_equals_teacher() -> None:
    z = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(4, dtype=torch.long)
    assert kd_loss(z, z, y, kd_weight=1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_sp_loss_matches_explicit_loops() -> None:
    g = torch.Generator().manual_seed(1)
    fs, ft = torch.randn(5, 3, 4, 4, generator=g), torch.randn(5, 8, 2, 2, generator=g)
    b = 5
    a_s, a_t = fs.reshape(b, -1).double(), ft.reshape(b, -1).double()
    gs = [[float(a_s[i] @ a_s[j]) for j in range(b)] for i in range(b)]
    gt = [[float(a_t[i] @ a_t[j]) for j in range(b)] for i in range(b)]
    total = 0.0
    for i in range(b):
        ns = sum(v * v for v in gs[i]) ** 0.5
        nt = sum(v * v for v in gt[i]) ** 0.5
        for j in range(b):
            total += (gt[i][j] / nt - gs[i][j] / ns) ** 2
    assert sp_loss(fs, ft).item() == pytest.approx(total / (b * b), rel=1e-5)


def test_ickd_loss_matches_explicit_loops() -> None:
    g = torch.Generator().manual_seed(2)
    b, c = 3, 4
    fs, ft = torch.randn(b, c, 3, 3, generator=g), torch.randn(b, c, 2, 2, generator=g)
    total = 0.0
    for n in range(b):
        s, t = fs[n].reshape(c, -1).double(), ft[n].reshape(c, -1).double()
        for i in range(c):
            row_s = [float(s[i] @ s[j]) for j in range(c)]
            row_t = [float(t[i] @ t[j]) for j in range(c)]
            ns, nt = sum(v * v for v in row_s) ** 0.5, sum(v * v for v in row_t) ** 0.5
            total += sum((row_t[j] / nt - row_s[j] / ns) ** 2 for j in range(c))
    assert ickd_loss(fs, ft).item() == pytest.approx(total / (c * b), rel=1e-5)
    assert ickd_loss(ft, ft).item() == pytest.approx(0.0, abs=1e-6)


def test_ickd_module_embeds_the_student_to_the_teacher_width() -> None:
    mod = ICKD(16, 64)
    loss = mod(torch.randn(4, 16, 8, 8), torch.randn(4, 64, 8, 8))
    loss.backward()
    assert loss.item() > 0 and mod.embed[0].weight.grad is not None
    with pytest.raises(ValueError):
        ickd_loss(torch.randn(2, 16, 4, 4), torch.randn(2, 64, 4, 4))


def test_feature_loss_specs() -> None:
    assert parse_feature_losses(()) == {}
    assert parse_feature_losses("sp,ickd=1.5") == {"sp": 3000.0, "ickd": 1.5}
    assert parse_feature_losses({"SP": 10}) == {"sp": 10.0}
    with pytest.raises(SearchKDError, match="unknown feature loss"):
        parse_feature_losses(["at"])
    with pytest.raises(SearchKDError):
        parse_feature_losses("sp=x")
