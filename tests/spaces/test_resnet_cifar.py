from __future__ import annotations

import pytest

from searchkd.errors import SearchKDError
from searchkd.spaces import count_cost, get_space

SPACE = get_space("resnet_cifar")


@pytest.mark.parametrize("arch, params", [("3-3-3", 0.27), ("9-9-9", 0.85), ("18-18-18", 1.7)])
def test_known_resnet_sizes(arch, params):
    # He et al. 2016, Table 6: ResNet-20 0.27 M, ResNet-56 0.85 M, ResNet-110 1.7 M
    assert SPACE.cost(arch)["params"] == pytest.approx(params, abs=0.005 if params < 1 else 0.05)


def test_exact_known_counts():
    # the option-A counts every public CIFAR ResNet implementation reports (10 classes)
    assert round(SPACE.cost("3-3-3")["params"] * 1e6) == 269722
    assert round(SPACE.cost("9-9-9")["params"] * 1e6) == 853018
    assert round(SPACE.cost("18-18-18")["params"] * 1e6) == 1727962


@pytest.mark.parametrize("arch", ["1-1-1", "3-5-7", "9-1-4"])
def test_closed_form_cost_equals_hook_count(arch):
    assert SPACE.cost(arch) == pytest.approx(count_cost(SPACE.build(arch)), abs=1e-9)


def test_shortcuts_add_no_parameters_and_shapes_work():
    import torch

    net = SPACE.build("1-2-1", num_classes=100)
    assert net.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 64, 8, 8)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_teachers_build_but_are_outside_the_student_space():
    assert SPACE.validate("18-18-18") == "18-18-18"
    with pytest.raises(SearchKDError, match="outside the student space"):
        SPACE.encode("18-18-18")


@pytest.mark.parametrize("bad", ["3-3", "a-b-c", "0-3-3", "3-3-3-3", "", "3--3"])
def test_malformed(bad):
    with pytest.raises(SearchKDError, match="resnet_cifar"):
        SPACE.encode(bad)
