"""params and flops against searchkd.spaces.count_cost and NB201's closed form."""

from __future__ import annotations

import math

import torch

from searchkd.proxies import get_proxy
from searchkd.spaces import count_cost, get_space


def test_params_flops_match_the_space_cost():
    space = get_space("nb201")
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    torch.manual_seed(0)
    net = space.build(arch, 10)
    batch = (torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    cost = space.cost(arch)
    assert math.isclose(get_proxy("params").fn(net, batch, None), cost["params"], rel_tol=1e-12)
    assert math.isclose(get_proxy("flops").fn(net, batch, None), cost["flops"], rel_tol=1e-12)


def test_cost_needs_no_data_and_follows_the_image_size():
    net = get_space("resnet_cifar").build("1-1-1", 10)
    assert not get_proxy("params").needs_data and not get_proxy("flops").needs_data
    small = get_proxy("flops").fn(net, (torch.zeros(1, 3, 16, 16), None), None)
    assert math.isclose(small, count_cost(net, (3, 16, 16))["flops"], rel_tol=1e-12)
    assert math.isclose(get_proxy("params").fn(net, None, None), count_cost(net)["params"], rel_tol=1e-12)
