"""snip against the closed form of a linear model and the mask formulation of SNIP."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from _nets import Linear, Small

from searchkd.proxies import get_proxy



def test_snip_closed_form_linear():
    torch.manual_seed(0)
    net = Linear().double()
    x, y = torch.randn(8, 6, 1, 1, dtype=torch.float64), torch.randint(0, 4, (8,))
    w = net.classifier.weight.detach().numpy()
    X = x.reshape(8, -1).numpy()
    logits = X @ w.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(8), y.numpy()] -= 1.0
    g = p.T @ X / 8
    value = get_proxy("snip").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, float(np.abs(w * g).sum()), rel_tol=1e-10)


def test_snip_equals_mask_sensitivity():
    """SNIP's definition: |∂L/∂c| of a multiplicative mask c = 1 on every conv/linear weight."""
    torch.manual_seed(3)
    net = Small().train()
    x, y = torch.randn(6, 3, 5, 5), torch.randint(0, 3, (6,))
    names = [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    params = dict(net.named_parameters())
    masks = {n: torch.ones_like(params[n + ".weight"], requires_grad=True) for n in names}
    masked = {k: v.detach() for k, v in params.items()}
    for n in names:
        masked[n + ".weight"] = masked[n + ".weight"] * masks[n]
    loss = F.cross_entropy(functional_call(copy.deepcopy(net), masked, (x,)), y)
    grads = torch.autograd.grad(loss, list(masks.values()))
    expected = sum(float(g.abs().sum()) for g in grads)
    value = get_proxy("snip").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, expected, rel_tol=1e-5)
