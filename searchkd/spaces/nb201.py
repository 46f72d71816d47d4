"""NAS-Bench-201 cell space (Dong & Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020).

An arch is the benchmark's official cell string, e.g.
``|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|``:
node ``i`` (1..3) sums one operation on each earlier node ``j`` (written ``op~j``).
The encoding is the six edges in that order (1←0, 2←0, 2←1, 3←0, 3←1, 3←2), each the
index of its op in :data:`OPS`; all 5^6 = 15,625 cells are valid.

``build`` gives the benchmark's evaluation network for CIFAR (``TinyNetwork`` with C=16,
N=5): a 3×3 stem to 16 channels, three stages of five cells at 16/32/64 channels joined by
residual reduction blocks, BN-ReLU, global average pooling, a linear classifier. Its
parameter count equals the benchmark's ``params`` for every cell (checked over all 15,625).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from searchkd.errors import SearchKDError
from searchkd.registry import SPACES
from searchkd.spaces.base import SearchSpace, as_rng

__all__ = ["OPS", "NB201Space", "BEST_CIFAR10_CELL", "parse_cell", "format_cell"]

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (target node, source node) of each encoded position
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
BEST_CIFAR10_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"

C, N = 16, 5
# Closed-form cost of one op on one edge: parameters per channel width, MACs per stage.
# Every cell stage has C·C channels×spatial constant (16·32², 32·16², 64·8²) so a conv's
# MACs are the same in all three stages.
_PIXELS = (32 * 32, 16 * 16, 8 * 8)
_WIDTHS = (C, 2 * C, 4 * C)


def _op_params(op: str, c: int) -> int:
    return {"nor_conv_3x3": 9 * c * c + 2 * c, "nor_conv_1x1": c * c + 2 * c}.get(op, 0)


def _op_macs(op: str, c: int, pixels: int) -> int:
    return {"nor_conv_3x3": 9 * c * c * pixels, "nor_conv_1x1": c * c * pixels}.get(op, 0)


def parse_cell(arch: str) -> list[int]:
    """The six op indices of an official NB201 cell string; strict about its form."""
    if not isinstance(arch, str):
        raise SearchKDError(f"nb201: an arch is a cell string, got {type(arch).__name__}")
    nodes = arch.split("+")
    if len(nodes) != 3:
        raise SearchKDError(
            f"nb201: malformed cell {arch!r}: expected 3 nodes joined by '+' "
            "(e.g. |nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|)"
        )
    vec: list[int] = []
    for i, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise SearchKDError(f"nb201: malformed node {node!r} in {arch!r}: each node is written |op~j|…|")
        edges = node[1:-1].split("|")
        if len(edges) != i:
            raise SearchKDError(f"nb201: node {i} of {arch!r} has {len(edges)} edges, expected {i}")
        for j, edge in enumerate(edges):
            op, sep, src = edge.partition("~")
            if not sep:
                raise SearchKDError(f"nb201: malformed edge {edge!r} in {arch!r}: expected op~j")
            if op not in OPS:
                raise SearchKDError(f"nb201: unknown op {op!r} in {arch!r} (known: {', '.join(OPS)})")
            if src != str(j):
                raise SearchKDError(
                    f"nb201: edge {edge!r} of node {i} in {arch!r} must come from node {j} (edges are listed ~0..~{i - 1})"
                )
            vec.append(OPS.index(op))
    return vec


def format_cell(vec: list[int]) -> str:
    ops = [OPS[v] for v in vec]
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


class NB201Space(SearchSpace):
    """NAS-Bench-201 cells (15,625), the benchmark's own C=16, N=5 CIFAR network."""

    name = "nb201"
    description = "NAS-Bench-201 cell space: 15,625 cells, the benchmark's C=16 N=5 network"
    default_teacher = "nb201-best"

    def sample(self, rng: np.random.Generator | int | None = None) -> str:
        rng = as_rng(rng)
        return format_cell([int(v) for v in rng.integers(len(OPS), size=len(EDGES))])

    def bounds(self) -> list[int]:
        return [len(OPS)] * len(EDGES)

    def encode(self, arch: str) -> list[int]:
        return parse_cell(arch)

    def decode(self, vec: Any) -> str:
        return format_cell(self._check_vec(vec))

    def all_archs(self) -> list[str]:
        """Every cell, in encoding order (not the benchmark's index order)."""
        return [format_cell(list(v)) for v in np.ndindex(*self.bounds())]

    def cost(self, arch: str, num_classes: int = 10) -> dict[str, float]:
        """Closed form, equal to hook counting on the built network (see tests)."""
        ops = [OPS[v] for v in parse_cell(arch)]
        head = 64 * num_classes + num_classes  # the classifier (its MACs counted as its parameters)
        params = 73306 - 650  # every part but the cells and the classifier (all-none cell)
        macs = 16 * 27 * 1024 + (1179648 + 2359296 + 131072) * 2 + head  # stem, 2 residual blocks, classifier
        for c, px in zip(_WIDTHS, _PIXELS):
            params += N * sum(_op_params(op, c) for op in ops)
            macs += N * sum(_op_macs(op, c, px) for op in ops)
        return {"params": (params + head) / 1e6, "flops": macs / 1e6}

    def build(self, arch: str, num_classes: int = 10) -> Any:
        from searchkd.spaces._nb201_net import TinyNetwork

        return TinyNetwork(parse_cell(arch), num_classes=num_classes, C=C, N=N)


SPACES.register("nb201", NB201Space, description=NB201Space.description)
