"""meco against numpy eigenvalues of explicitly built channel correlations."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from searchkd.proxies import get_proxy
from searchkd.proxies.meco import min_eig_corr
from searchkd.spaces._net import ClassifierNet


class Small(ClassifierNet):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU())
        self.classifier = nn.Linear(5, 3)

    def forward_features(self, x):
        return self.body(x)


def np_min_eig(fmap):
    f = fmap.reshape(fmap.shape[0], -1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(f)
    corr[~np.isfinite(corr)] = 0.0
    return float(np.min(np.real(np.linalg.eig(corr)[0])))


def test_meco_sums_min_eigenvalue_of_every_module_output():
    torch.manual_seed(0)
    net = Small()
    with torch.no_grad():
        net.body[0].weight[2].zero_()  # a constant channel: NaN correlations become 0
    x = torch.randn(4, 3, 6, 6)
    with torch.no_grad():
        conv = net.body[0](x[:1])[0].numpy()
    relu = np.maximum(conv, 0)
    # modules: the net (logits: not a map → 0), body (= relu output), conv, relu, classifier (→ 0)
    expected = np_min_eig(conv) + 2 * np_min_eig(relu)
    value = get_proxy("meco").fn(copy.deepcopy(net), (x, torch.zeros(4, dtype=torch.long)), None)
    assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)


def test_meco_uses_only_the_first_image():
    torch.manual_seed(1)
    net = Small()
    x = torch.randn(4, 3, 6, 6)
    y = x.clone()
    y[1:] = torch.randn(3, 3, 6, 6)
    fn = get_proxy("meco").fn
    assert fn(copy.deepcopy(net), (x, None), None) == fn(copy.deepcopy(net), (y, None), None)


def test_min_eig_corr_matches_eigvalsh():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(6, 20))
    assert math.isclose(min_eig_corr(torch.from_numpy(f)), float(np.linalg.eigvalsh(np.corrcoef(f))[0]), rel_tol=1e-10)
    assert min_eig_corr(torch.zeros(4, 3, 3)) == 0.0
