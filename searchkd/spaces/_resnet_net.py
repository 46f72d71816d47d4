"""CIFAR ResNet (basic blocks, option-A shortcuts) in plain torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from searchkd.spaces._net import ClassifierNet


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(ClassifierNet):
    def __init__(self, blocks: tuple[int, int, int], num_classes: int = 10) -> None:
        super().__init__()
        self.blocks = tuple(blocks)
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        c_prev = 16
        for stage, (n, c) in enumerate(zip(blocks, (16, 32, 64))):
            for i in range(n):
                layers.append(BasicBlock(c_prev, c, 2 if (i == 0 and stage > 0) else 1))
                c_prev = c
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(F.relu(self.bn1(self.conv1(x))))
