"""zico against an explicit numpy computation of the paper's formula, and the two-batch
closed form."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _nets import Small

from searchkd.errors import SearchKDError
from searchkd.proxies import get_proxy


def reference_zico(net, x, y, splits=2):
    """Per mini-batch backward on a copy, numpy std over the mini-batches (ddof 0)."""
    grads = []  # [batch][layer] flat numpy arrays
    for xb, yb in zip(np.array_split(np.arange(len(y)), splits), np.array_split(np.arange(len(y)), splits)):
        ref = copy.deepcopy(net).train()
        F.cross_entropy(ref(x[xb]), y[yb]).backward()
        grads.append([m.weight.grad.double().numpy().ravel() for m in ref.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    total = 0.0
    for layer in zip(*grads):
        g = np.stack(layer)
        std = g.std(axis=0)
        nz = std != 0
        s = np.sum(np.abs(g).mean(axis=0)[nz] / std[nz])
        if s != 0:
            total += math.log(s)
    return total


def test_zico_matches_an_explicit_computation():
    torch.manual_seed(0)
    net = Small()
    x, y = torch.randn(10, 3, 6, 6), torch.randint(0, 3, (10,))
    value = get_proxy("zico").fn(copy.deepcopy(net), (x, y), None)
    assert math.isclose(value, reference_zico(net, x, y), rel_tol=1e-5)


def test_two_batch_closed_form_on_a_linear_model():
    # one linear layer: mean|g|/std(g) = (|g1| + |g2|) / |g1 - g2| per weight
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).double()
    x, y = torch.randn(8, 3, 2, 2, dtype=torch.float64), torch.randint(0, 4, (8,))
    g = []
    for sl in (slice(0, 4), slice(4, 8)):
        w = net[1].weight.detach().numpy()
        b = net[1].bias.detach().numpy()
        X = x[sl].reshape(4, -1).numpy()
        logits = X @ w.T + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(4), y[sl].numpy()] -= 1.0
        g.append((p.T @ X / 4).ravel())
    g1, g2 = g
    expected = math.log(np.sum((np.abs(g1) + np.abs(g2)) / np.abs(g1 - g2)))
    assert math.isclose(get_proxy("zico").fn(copy.deepcopy(net), (x, y), None), expected, rel_tol=1e-9)


def test_a_batch_too_small_to_split_is_refused():
    with pytest.raises(SearchKDError, match="at least"):
        get_proxy("zico").fn(Small(), (torch.randn(3, 3, 6, 6), torch.tensor([0, 1, 2])), None)
