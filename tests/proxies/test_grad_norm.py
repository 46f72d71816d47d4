"""grad_norm against the closed-form cross-entropy gradient of a linear model and an
explicit per-layer autograd loop."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from _nets import Linear, Small

from searchkd.proxies import get_proxy



def linear_grad(net, x, y):
    w = net.classifier.weight.detach().double().numpy()
    X = x.reshape(x.shape[0], -1).double().numpy()
    logits = X @ w.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y.numpy()] -= 1.0
    return w, p.T @ X / len(y)


def test_grad_norm_closed_form_linear():
    torch.manual_seed(0)
    net = Linear().double()
    x, y = torch.randn(8, 6, 1, 1, dtype=torch.float64), torch.randint(0, 4, (8,))
    _, g = linear_grad(net, x, y)
    value = get_proxy("grad_norm").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, float(np.linalg.norm(g)), rel_tol=1e-10)


def test_grad_norm_explicit_loop():
    torch.manual_seed(1)
    net = Small()
    x, y = torch.randn(5, 3, 6, 6), torch.randint(0, 3, (5,))
    ref = copy.deepcopy(net).train()
    F.cross_entropy(ref(x), y).backward()
    expected = sum(float(m.weight.grad.norm()) for m in ref.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    value = get_proxy("grad_norm").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, expected, rel_tol=1e-5)


def test_unreached_layer_counts_zero():
    class Dead(Small):
        def __init__(self):
            super().__init__()
            self.unused = nn.Conv2d(3, 3, 1)

    torch.manual_seed(2)
    net = Dead()
    x, y = torch.randn(4, 3, 6, 6), torch.randint(0, 3, (4,))
    small = Small()
    small.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("unused")})
    a = get_proxy("grad_norm").fn(copy.deepcopy(net), (x, y), None)
    b = get_proxy("grad_norm").fn(small, (x, y), None)
    assert math.isclose(a, b, rel_tol=1e-6)
