"""The NAS-Bench-201 evaluation network in plain torch (the benchmark's TinyNetwork/InferCell)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from searchkd.spaces._net import ClassifierNet

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class ReLUConvBN(nn.Sequential):
    """``affine``/``track``: the BN's learnt scale and running statistics (the DARTS supernet's
    mixed ops turn both off, as NAS-Bench-201's DARTS search does)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, affine: bool = True,
                 track: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track),
        )


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, c: int, affine: bool = True, track: bool = True) -> nn.Module:
    # Inside a normal cell every op keeps width and resolution, so the benchmark's
    # preprocessing convs (pooling with c_in != c_out) and FactorizedReduce never appear.
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0, affine, track)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1, affine, track)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(name)


def cell_forward(x: torch.Tensor, edge: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The cell's DAG: node i = sum over j < i of ``edge(k, node j)`` (k the edge's position
    in the cell string); the output is node 3."""
    nodes = [x]
    k = 0
    for i in (1, 2, 3):
        s = edge(k, nodes[0])
        for j in range(1, i):
            s = s + edge(k + j, nodes[j])
        k += i
        nodes.append(s)
    return nodes[3]


class InferCell(nn.Module):
    """Node i = sum over j < i of op_ij(node j); the cell's output is node 3."""

    def __init__(self, ops: list[int], c: int, affine: bool = True, track: bool = True) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(OPS[o], c, affine, track) for o in ops)
        self.sources = [0, 0, 1, 0, 1, 2]
        self.targets = [1, 2, 2, 3, 3, 3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cell_forward(x, lambda k, h: self.edges[k](h))


class ResNetBasicblock(nn.Module):
    """The benchmark's reduction block: two ReLU-conv-BN (first strided) plus an
    avg-pool + 1×1 conv shortcut."""

    def __init__(self, c_in: int, c_out: int, track: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, track=track)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, track=track)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(ClassifierNet):
    """The benchmark's skeleton around N cells per stage.

    ``make_cell(c)`` builds each cell (default: the fixed cell ``ops``); ``track`` False
    drops the running statistics of the stem, residual-block and last BNs (the DARTS supernet
    keeps them, as NB201's ``TinyNetworkDarts``: :mod:`searchkd.supernets.nb201_supernet`).
    """

    def __init__(self, ops: list[int], num_classes: int = 10, C: int = 16, N: int = 5, *,
                 make_cell: Callable[[int], nn.Module] | None = None, track: bool = True) -> None:
        super().__init__()
        self.ops = list(ops)
        make_cell = make_cell or (lambda c: InferCell(self.ops, c))
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C, track_running_stats=track))
        cells: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage:
                cells.append(ResNetBasicblock(c, 2 * c, track))
                c *= 2
            cells.extend(make_cell(c) for _ in range(N))
        self.cells = nn.Sequential(*cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c, track_running_stats=track), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.lastact(self.cells(self.stem(x)))
