"""fisher against an explicit retain_grad computation and the closed form of a linear model."""

from __future__ import annotations

import copy
import math

import numpy as np
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
        self.conv2 = nn.Conv2d(4, 5, 1)
        self.classifier = nn.Linear(5, 3)

    def forward_features(self, x):
        return F.relu(self.conv2(F.relu(self.bn1(self.conv1(x)))))


def test_fisher_explicit_retain_grad():
    torch.manual_seed(0)
    net = Small().train()
    x, y = torch.randn(6, 3, 5, 5), torch.randint(0, 3, (6,))
    ref = copy.deepcopy(net)
    a1 = ref.conv1(x)
    a1.retain_grad()
    a2 = ref.conv2(F.relu(ref.bn1(a1)))
    a2.retain_grad()
    a3 = ref.classifier(F.relu(a2).mean(dim=(2, 3)))
    a3.retain_grad()
    F.cross_entropy(a3, y).backward()
    expected = 0.0
    for a, fan_in in ((a1, 3 * 9), (a2, 4), (a3, 5)):
        s = a.detach() * a.grad
        g_nk = s.sum(dim=(2, 3)) if s.dim() == 4 else s
        expected += float((0.5 * g_nk.pow(2).mean(0)).sum()) * fan_in
    value = get_proxy("fisher").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, expected, rel_tol=1e-5)


def test_fisher_closed_form_linear():
    """logits a = W x, ∂L/∂a = (P − Y)/B: fisher = C · Σ_k ½ mean_n (a_nk g_nk)²."""

    class Lin(ClassifierNet):
        def __init__(self):
            super().__init__()
            self.classifier = nn.Linear(6, 4, bias=False)

        def forward_features(self, x):
            return x

    torch.manual_seed(1)
    net = Lin().double()
    x, y = torch.randn(8, 6, 1, 1, dtype=torch.float64), torch.randint(0, 4, (8,))
    X = x.reshape(8, 6).numpy()
    a = X @ net.classifier.weight.detach().numpy().T
    p = np.exp(a - a.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(8), y.numpy()] -= 1.0
    g = p / 8
    expected = 6 * float((0.5 * ((a * g) ** 2).mean(0)).sum())
    value = get_proxy("fisher").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, expected, rel_tol=1e-10)
