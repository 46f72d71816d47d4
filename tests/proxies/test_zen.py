"""zen against the Zen-NAS formula recomputed by hand, the BN running variance included."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from searchkd.proxies import get_proxy
from searchkd.proxies import zen as zen_mod
from searchkd.spaces._net import ClassifierNet


class Small(ClassifierNet):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 1, bias=True)
        self.classifier = nn.Linear(6, 3)

    def forward_features(self, x):
        return torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))))


def by_hand(net, shape, repeats, seed):
    """The same random draws in the same order: weights N(0,1), x, ε; BN stats by momentum."""
    torch.manual_seed(seed)
    scores = []
    with torch.no_grad():
        for _ in range(repeats):
            w1 = torch.randn_like(net.conv1.weight)
            w2 = torch.randn_like(net.conv2.weight)
            torch.randn_like(net.classifier.weight)  # the classifier is re-drawn too (unused)
            x, eps = torch.randn(shape), torch.randn(shape)
            running = torch.ones(4)
            outs = []
            for inp in (x, x + 0.01 * eps):
                a = torch.nn.functional.conv2d(inp, w1, padding=1)
                var = a.transpose(0, 1).reshape(4, -1).var(dim=1, unbiased=True)
                running = 0.9 * running + 0.1 * var
                mean = a.mean(dim=(0, 2, 3), keepdim=True)
                bvar = a.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
                h = torch.relu((a - mean) / torch.sqrt(bvar + 1e-5))
                outs.append(torch.relu(torch.nn.functional.conv2d(h, w2)))
            delta = (outs[0] - outs[1]).abs().sum(dim=(1, 2, 3)).mean()
            scores.append(math.log(delta) + 0.5 * math.log(float(running.mean())))
    return float(np.mean(scores))


def test_zen_formula_by_hand():
    torch.manual_seed(0)
    net = Small()
    images = torch.randn(5, 3, 6, 6)
    torch.manual_seed(7)
    value = get_proxy("zen").fn(copy.deepcopy(net), (images, None), None)
    expected = by_hand(net, (5, 3, 6, 6), zen_mod.REPEATS, seed=7)
    assert math.isclose(value, expected, rel_tol=1e-4)


def test_zen_ignores_the_images_and_the_initial_weights():
    torch.manual_seed(0)
    a, b = Small(), Small()
    fn = get_proxy("zen").fn
    images = torch.randn(4, 3, 6, 6)
    torch.manual_seed(3)
    va = fn(a, (images, None), None)
    torch.manual_seed(3)
    vb = fn(b, (torch.zeros(4, 3, 6, 6), None), None)
    assert va == vb
