"""The engine's promise that every proxy sees a fresh student, whatever the order."""

import math

import pytest
import torch

from searchkd.proxies import Scorer
from searchkd.spaces import get_space

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 32, 32, generator=g), torch.arange(8) % 10


def test_score_arch_equals_score_net_and_each_proxy_alone(batch):
    # synflow and snip change the weights they get; params reads them: in any order and
    # alone, each proxy must score as if it were the only one
    space = get_space("nb201")
    proxies = ["synflow", "snip", "params", "nwot"]
    together = Scorer(proxies, batch, num_classes=10, seed=3).score_arch(space, ARCH)["scores"]
    reverse = Scorer(proxies[::-1], batch, num_classes=10, seed=3).score_arch(space, ARCH)["scores"]
    torch.manual_seed(3)
    net = space.build(ARCH, num_classes=10)
    via_net = Scorer(proxies, batch, num_classes=10, seed=3).score_net(net)
    for p in proxies:
        alone = Scorer([p], batch, num_classes=10, seed=3).score_arch(space, ARCH)["scores"][p]
        assert math.isfinite(alone)
        assert together[p] == pytest.approx(alone, rel=1e-6)
        assert reverse[p] == pytest.approx(alone, rel=1e-6)
        assert via_net[p] == pytest.approx(alone, rel=1e-6)


def test_score_net_leaves_the_callers_net_alone(batch):
    space = get_space("nb201")
    net = space.build(ARCH, num_classes=10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    Scorer(["synflow", "snip"], batch, num_classes=10).score_net(net)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
