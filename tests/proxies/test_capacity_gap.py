from __future__ import annotations

import math

import pytest
import torch

import searchkd
from searchkd.errors import SearchKDError
from searchkd.proxies import Scorer
from searchkd.proxies.capacity_gap import DEFAULT_RATIO, gap_penalty
from searchkd.spaces import get_space


def test_penalty_closed_form():
    assert gap_penalty(2.5, 1.0) == 0.0
    assert gap_penalty(10.0, 1.0) == pytest.approx(-(math.log(4.0)) ** 2)
    # symmetric in log space around the optimum
    assert gap_penalty(2.5 * 3, 1.0) == pytest.approx(gap_penalty(2.5 / 3, 1.0))
    with pytest.raises(SearchKDError):
        gap_penalty(0, 1)


def test_proxy_prefers_students_near_the_optimal_ratio():
    space = get_space("resnet_cifar")
    batch = (torch.randn(4, 3, 32, 32), torch.arange(4))
    teacher = space.build("9-9-9")  # 0.853 M → ideal student 0.341 M
    scorer = Scorer(["capacity_gap"], batch, teacher=teacher, num_classes=10)
    near = scorer.score_arch(space, "3-4-4")  # 0.34 M
    far = scorer.score_arch(space, "1-1-1")  # 0.08 M
    assert near["scores"]["capacity_gap"] > far["scores"]["capacity_gap"]
    expected = gap_penalty(space.cost("9-9-9")["params"], near["params"])
    assert near["scores"]["capacity_gap"] == pytest.approx(expected)


def test_pick_teacher_by_budget_and_by_arch():
    c = searchkd.pick_teacher(0.34, ["resnet20", "resnet56", "resnet110"])
    assert c.teacher == "resnet56" and "2.5" in c.reason and c.ideal_params == pytest.approx(0.34 * DEFAULT_RATIO)
    assert searchkd.pick_teacher(0.7, ["resnet20", "resnet56", "resnet110"]).teacher == "resnet110"
    assert searchkd.pick_teacher("1-1-1", ["resnet20", "resnet56"], space="resnet_cifar").teacher == "resnet20"
    with pytest.raises(SearchKDError, match="no teacher candidates"):
        searchkd.pick_teacher(0.3, [])
    with pytest.raises(SearchKDError, match="unknown teacher"):
        searchkd.pick_teacher(0.3, ["resnet57"])
