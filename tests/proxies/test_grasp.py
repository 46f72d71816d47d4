"""grasp against −θ·Hg with the Hessian-gradient product taken by finite differences of the
gradient (double precision)."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from _nets import Linear, Small

from searchkd.proxies import get_proxy


def weights(net):
    return [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def grad_at(net, x, y):
    net.zero_grad()
    F.cross_entropy(net.train()(x), y).backward()
    return [w.grad.detach().clone() for w in weights(net)]


def finite_difference_grasp(net, x, y, h=1e-5):
    net = copy.deepcopy(net)
    g = grad_at(net, x, y)
    ws = weights(net)
    base = [w.detach().clone() for w in ws]
    with torch.no_grad():
        for w, b, d in zip(ws, base, g):
            w.copy_(b + h * d)
    plus = grad_at(net, x, y)
    with torch.no_grad():
        for w, b, d in zip(ws, base, g):
            w.copy_(b - h * d)
    minus = grad_at(net, x, y)
    return sum(float((-b * (p - m) / (2 * h)).sum()) for b, p, m in zip(base, plus, minus))


def test_grasp_matches_finite_difference_hessian_product():
    torch.manual_seed(0)
    net = Small(c2=5, act=torch.tanh).double()
    x, y = torch.randn(6, 3, 5, 5, dtype=torch.float64), torch.randint(0, 3, (6,))
    expected = finite_difference_grasp(net, x, y)
    value = get_proxy("grasp").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, expected, rel_tol=1e-5, abs_tol=1e-9)
    assert value != 0.0


def test_grasp_linear_model():
    """Softmax regression (the Hessian in closed form is not needed: finite differences)."""

    torch.manual_seed(1)
    net = Linear(c=4, k=3).double()
    x, y = torch.randn(10, 4, 1, 1, dtype=torch.float64), torch.randint(0, 3, (10,))
    expected = finite_difference_grasp(net, x, y)
    value = get_proxy("grasp").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, expected, rel_tol=1e-5, abs_tol=1e-10)
