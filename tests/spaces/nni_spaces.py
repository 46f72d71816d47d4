"""Small NNI 3.0 model spaces for tests/spaces/test_nni_space.py (named by file path)."""

from __future__ import annotations

import nni
from nni.mutable import ensure_frozen
from nni.nas.nn.pytorch import InputChoice, LayerChoice, ModelSpace
from torch import nn


class NestedSpace(ModelSpace):
    """Two of three inputs summed (InputChoice), then an op whose ``branch`` candidate holds
    a choice of its own (``inner``, active only when ``outer`` is ``branch``): 3 × (1 + 2) = 9 nets."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 1)
        self.pick = InputChoice(3, n_chosen=2, reduction="sum", label="inputs")
        inner = LayerChoice([nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 5, padding=2)], label="inner")
        self.op = LayerChoice({"plain": nn.Identity(), "branch": inner}, label="outer")
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.op(self.pick([x, self.a(x), self.b(x)]))
        return self.fc(x.mean((2, 3)))


class ContinuousSpace(ModelSpace):
    """A dropout rate drawn from nni.uniform: continuous, so not a searchkd space."""

    def __init__(self) -> None:
        super().__init__()
        p = self.add_mutable(nni.uniform("dropout", 0.0, 0.5))
        self.drop = nn.Dropout(ensure_frozen(p))
        self.fc = nn.Linear(3, 2)


class NoLinearSpace(ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        self.op = LayerChoice([nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1)], label="op")

    def forward(self, x):
        return self.op(x).mean((2, 3))


class BrokenSpace(ModelSpace):
    def __init__(self) -> None:
        super().__init__()
        raise RuntimeError("boom")


def nested_factory():
    """A zero-argument factory; its networks have 4 classes (no num_classes parameter)."""
    return NestedSpace(num_classes=4)


NOT_A_SPACE = 3


def not_a_space():
    return nn.Linear(2, 2)


class WrongInputSpace(ModelSpace):
    """Its classifier expects 5 features, whatever the image: every network fails to run."""

    def __init__(self) -> None:
        super().__init__()
        self.op = LayerChoice([nn.Identity(), nn.ReLU()], label="op")
        self.fc = nn.Linear(5, 10)

    def forward(self, x):
        return self.fc(self.op(x).flatten(1))
