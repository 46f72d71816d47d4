"""The NAS-Bench-201 evaluation network in plain torch (the benchmark's TinyNetwork/InferCell)."""

from __future__ import annotations

import torch
from torch import nn

from searchkd.spaces._net import ClassifierNet

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, c: int) -> nn.Module:
    # Inside a normal cell every op keeps width and resolution, so the benchmark's
    # preprocessing convs (pooling with c_in != c_out) and FactorizedReduce never appear.
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(name)


class InferCell(nn.Module):
    """Node i = sum over j < i of op_ij(node j); the cell's output is node 3."""

    def __init__(self, ops: list[int], c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(OPS[o], c) for o in ops)
        self.sources = [0, 0, 1, 0, 1, 2]
        self.targets = [1, 2, 2, 3, 3, 3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for i in (1, 2, 3):
            s = self.edges[k](nodes[0])
            for j in range(1, i):
                s = s + self.edges[k + j](nodes[j])
            k += i
            nodes.append(s)
        return nodes[3]


class ResNetBasicblock(nn.Module):
    """The benchmark's reduction block: two ReLU-conv-BN (first strided) plus an
    avg-pool + 1×1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(ClassifierNet):
    def __init__(self, ops: list[int], num_classes: int = 10, C: int = 16, N: int = 5) -> None:
        super().__init__()
        self.ops = list(ops)
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage:
                cells.append(ResNetBasicblock(c, 2 * c))
                c *= 2
            cells.extend(InferCell(ops, c) for _ in range(N))
        self.cells = nn.Sequential(*cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.lastact(self.cells(self.stem(x)))
