"""synflow against its closed form on a tiny linear chain."""

from __future__ import annotations

import math

import torch
from torch import nn

from searchkd.proxies import Scorer, get_proxy
from searchkd.proxies.base import WORST
from searchkd.spaces._net import ClassifierNet


class Chain(ClassifierNet):
    """x ↦ W2 · mean_hw(relu(BN(W1 x))): a linear chain once |W| and BN are gone."""

    def __init__(self, c_in=3, hidden=5, classes=4, bn=True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, hidden, 1, bias=False)
        self.bn = nn.BatchNorm2d(hidden) if bn else nn.Identity()
        self.classifier = nn.Linear(hidden, classes, bias=False)

    def forward_features(self, x):
        return torch.relu(self.bn(self.conv(x)))


def test_synflow_closed_form_linear_chain():
    torch.manual_seed(0)
    net = Chain()
    with torch.no_grad():  # BN with arbitrary affine/stats: synflow must drop it
        net.bn.weight.uniform_(-3, 3)
        net.bn.bias.uniform_(-3, 3)
        net.bn.running_var.fill_(7.0)
    w1 = net.conv.weight.detach().abs().double().reshape(5, 3).numpy()
    w2 = net.classifier.weight.detach().abs().double().numpy()
    # with an all-ones image, R = Σ_kj |W2|_kj Σ_i |W1|_ji; each layer's Σ|θ ∂R/∂θ| equals R
    R = float((w2 @ w1 @ [1.0, 1.0, 1.0]).sum())
    images = torch.randn(2, 3, 4, 4)
    value = get_proxy("synflow").fn(net, (images, torch.zeros(2, dtype=torch.long)), None)
    assert math.isclose(value, 2 * R, rel_tol=1e-12)


def test_synflow_ignores_data_and_sign():
    torch.manual_seed(1)
    net = Chain(bn=False)
    spec = get_proxy("synflow")
    assert spec.needs_data is False
    a = spec.fn(_copy(net), (torch.randn(3, 3, 4, 4), None), None)
    flipped = _copy(net)
    with torch.no_grad():
        flipped.conv.weight.neg_()
    b = spec.fn(flipped, (torch.zeros(5, 3, 4, 4), None), None)
    assert math.isclose(a, b, rel_tol=1e-12)


def test_synflow_overflow_is_worst_not_an_error():
    torch.manual_seed(0)

    class Deep(ClassifierNet):
        def __init__(self):
            super().__init__()
            self.convs = nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1, bias=False) for _ in range(150)])
            self.stem = nn.Conv2d(3, 8, 1, bias=False)
            self.classifier = nn.Linear(8, 2)
            with torch.no_grad():
                for m in self.convs:
                    m.weight.fill_(10.0)

        def forward_features(self, x):
            return self.convs(self.stem(x))

    s = Scorer(["synflow"], (torch.randn(2, 3, 8, 8), torch.tensor([0, 1])), seed=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        v = s.score_net(Deep())["synflow"]
    assert v == WORST and s.nonfinite == {"synflow": 1}


def _copy(net):
    import copy

    return copy.deepcopy(net)
