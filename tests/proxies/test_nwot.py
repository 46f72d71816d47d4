"""nwot against a direct Hamming count of ReLU codes; its ReLU capture against nn.ReLU hooks."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from searchkd.proxies import get_proxy
from searchkd.proxies.nwot import nwot_kernel
from searchkd.spaces._nb201_net import TinyNetwork
from searchkd.spaces._net import ClassifierNet


class Small(ClassifierNet):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(4, 3)

    def forward_features(self, x):
        return self.act2(self.conv2(self.act1(self.conv1(x))))


def relu_module_codes(net, x):
    """Binary codes of every nn.ReLU module's input, concatenated (BayesWatch's hooks)."""
    codes = []

    def hook(module, inputs):
        codes.append((inputs[0].detach().reshape(x.shape[0], -1) > 0).numpy())

    hs = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        net.train()(x)
    for h in hs:
        h.remove()
    return np.concatenate(codes, axis=1)


def test_nwot_is_logdet_of_hamming_agreement():
    torch.manual_seed(0)
    net = Small()
    x = torch.randn(6, 3, 4, 4)
    c = relu_module_codes(copy.deepcopy(net), x)
    n_units = c.shape[1]
    K = np.array([[n_units - np.count_nonzero(c[i] != c[j]) for j in range(6)] for i in range(6)], dtype=float)
    expected = np.linalg.slogdet(K)[1]
    value = get_proxy("nwot").fn(copy.deepcopy(net), (x, torch.zeros(6, dtype=torch.long)), None)
    assert math.isclose(value, expected, rel_tol=1e-12)


def test_relu_capture_equals_relu_modules_on_nb201():
    torch.manual_seed(1)
    net = TinyNetwork([3, 2, 1, 4, 3, 2], num_classes=5, C=4, N=1)
    x = torch.randn(5, 3, 8, 8)
    c = relu_module_codes(copy.deepcopy(net), x).astype(float)
    K = c @ c.T + (1 - c) @ (1 - c).T
    codes = nwot_kernel(copy.deepcopy(net), x)
    assert codes.calls == sum(isinstance(m, nn.ReLU) for m in net.modules())
    assert codes.units == c.shape[1]
    np.testing.assert_array_equal(codes.K.numpy(), K)


def test_functional_relu_networks_are_covered():
    class Functional(Small):
        def forward_features(self, x):
            return F.relu(self.conv2(torch.relu(self.conv1(x))))

    torch.manual_seed(2)
    net = Functional()
    x = torch.randn(4, 3, 4, 4)
    codes = nwot_kernel(copy.deepcopy(net), x)
    assert codes.calls == 2 and codes.units == 2 * 4 * 16
    assert math.isfinite(get_proxy("nwot").fn(net, (x, None), None))
