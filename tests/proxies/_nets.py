"""Tiny networks shared by the gradient-proxy tests."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from searchkd.spaces._net import ClassifierNet


class Linear(ClassifierNet):
    """logits = W · x for a C×1×1 'image' x (no bias): ∂L/∂W = (P − Y)ᵀ X / B."""

    def __init__(self, c=6, k=4):
        super().__init__()
        self.classifier = nn.Linear(c, k, bias=False)

    def forward_features(self, x):
        return x


class Small(ClassifierNet):
    """conv–BN–act–conv–act, then a linear head; ``act=torch.tanh`` makes it smooth (for
    finite differences of the gradient)."""

    def __init__(self, c2=6, act=F.relu):
        super().__init__()
        self.act = act
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, c2, 3, padding=1)
        self.classifier = nn.Linear(c2, 3)

    def forward_features(self, x):
        return self.act(self.conv2(self.act(self.bn1(self.conv1(x)))))
