"""jacob_cov against Jacobians by finite differences and numpy's correlation/eigenvalues."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from searchkd.proxies import get_proxy
from searchkd.proxies.jacob_cov import jacob_cov_score
from searchkd.spaces._net import ClassifierNet


class Small(ClassifierNet):  # no BatchNorm: each image's output depends on that image only
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.classifier = nn.Linear(4, 3)

    def forward_features(self, x):
        return torch.tanh(self.conv(x))


def reference_score(J):
    corr = np.corrcoef(J)
    v, _ = np.linalg.eig(corr)
    v = np.real(v)
    return float(-np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5)))


def test_jacob_cov_finite_differences_and_numpy():
    torch.manual_seed(0)
    net = Small().double()
    x = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    h = 1e-6
    J = np.zeros((5, 27))
    with torch.no_grad():
        for b in range(5):
            for d in range(27):
                e = torch.zeros(27, dtype=torch.float64)
                e[d] = h
                e = e.reshape(3, 3, 3)
                J[b, d] = float((net(x[b:b + 1] + e).sum() - net(x[b:b + 1] - e).sum()) / (2 * h))
    expected = reference_score(J)
    value = get_proxy("jacob_cov").fn(copy.deepcopy(net), (x, torch.zeros(5, dtype=torch.long)), None)
    assert math.isclose(value, expected, rel_tol=1e-6)
    assert math.isclose(jacob_cov_score(J), expected, rel_tol=1e-9)


def test_jacob_cov_constant_rows_are_nan():
    J = np.ones((4, 10))
    J[1] = 0.0
    assert math.isnan(jacob_cov_score(J))
