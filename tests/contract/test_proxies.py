"""Every registered teacher-free proxy honours the proxy contract through the Scorer."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch

import searchkd.proxies  # noqa: F401  (registration)
from searchkd.proxies import Scorer
from searchkd.registry import PROXIES
from searchkd.spaces import get_space
from searchkd.spaces._nb201_net import TinyNetwork

NAMES = [n for n in PROXIES.names() if not PROXIES.get(n).needs_teacher]


def tiny_nb201():
    # the benchmark's network at width 4 and one cell per stage (every op type present)
    return TinyNetwork([3, 2, 1, 4, 3, 0], num_classes=10, C=4, N=1)


def resnet_111():
    return get_space("resnet_cifar").build("1-1-1", 10)


NETS = {"nb201": tiny_nb201, "resnet": resnet_111}


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, 16, 16, generator=g), torch.arange(16) % 10


@pytest.mark.parametrize("kind", sorted(NETS))
@pytest.mark.parametrize("name", NAMES)
def test_proxy_contract(name, kind, batch):
    torch.manual_seed(123)
    net = NETS[kind]()
    before = copy.deepcopy(net.state_dict())
    scorer = Scorer([name], batch, num_classes=10, seed=5)
    rng = torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a non-finite score warns
        a = scorer.score_net(net)[name]
    assert torch.equal(torch.get_rng_state(), rng), "the caller's RNG state changed"
    assert isinstance(a, float) and math.isfinite(a), f"{name} gave {a!r}"
    b = Scorer([name], batch, num_classes=10, seed=5).score_net(net)[name]
    assert a == b or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), "not deterministic under a seed"
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the caller's network changed"
    assert net.training


def test_every_classic_proxy_is_registered():
    assert {"synflow", "snip", "grad_norm", "grasp", "fisher", "jacob_cov", "nwot", "zen", "meco",
            "params", "flops"} <= set(NAMES)
