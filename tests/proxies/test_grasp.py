"""grasp against −θ·Hg with the Hessian-gradient product taken by finite differences of the
gradient (double precision)."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from searchkd.proxies import get_proxy
from searchkd.spaces._net import ClassifierNet


class Small(ClassifierNet):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 5, 3, padding=1)
        self.classifier = nn.Linear(5, 3)

    def forward_features(self, x):
        return torch.tanh(self.conv2(torch.tanh(self.bn1(self.conv1(x)))))


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
    net = Small().double()
    x, y = torch.randn(6, 3, 5, 5, dtype=torch.float64), torch.randint(0, 3, (6,))
    expected = finite_difference_grasp(net, x, y)
    value = get_proxy("grasp").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, expected, rel_tol=1e-5, abs_tol=1e-9)
    assert value != 0.0


def test_grasp_linear_model():
    """Softmax regression (the Hessian in closed form is not needed: finite differences)."""

    class Lin(ClassifierNet):
        def __init__(self):
            super().__init__()
            self.classifier = nn.Linear(4, 3, bias=False)

        def forward_features(self, x):
            return x

    torch.manual_seed(1)
    net = Lin().double()
    x, y = torch.randn(10, 4, 1, 1, dtype=torch.float64), torch.randint(0, 3, (10,))
    expected = finite_difference_grasp(net, x, y)
    value = get_proxy("grasp").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, expected, rel_tol=1e-5, abs_tol=1e-10)
