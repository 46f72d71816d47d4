"""The NAS-Bench-201 DARTS supernet: every cell edge a mixed operation over the five NB201 ops.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search" (ICLR 2019), on the
NAS-Bench-201 skeleton as the benchmark's own DARTS baseline sets it up (Dong & Yang, ICLR
2020): one architecture parameter α (6 edges × 5 ops) shared by every cell of every stage;
edge k of a cell outputs Σ_o softmax(α_k)_o · op_o(x). The skeleton (stem, residual reduction
blocks, BN-ReLU, classifier) and the ops are those of the evaluation network
(:mod:`searchkd.spaces._nb201_net`), built with BN without a learnt scale in the mixed ops and
without running statistics anywhere, as the benchmark's DARTS search runs: a BN always
normalises with the batch's statistics, so the supernet has no buffers and a snapshot of it is
its parameters alone.

**Derivation** is the argmax of α on each edge, written as the official cell string. As in
NAS-Bench-201's DARTS, ``none`` is a candidate like any other: a cell whose edges derive
``none`` is kept as it is (DARTS on NB201 is known to collapse onto parameter-free ops).

:meth:`NB201Supernet.forward` with ``hard`` (six op indices) runs only the chosen op on each
edge: the derived network evaluated with the supernet's (inherited) weights.

:func:`hvp` and :func:`dominant_eigenvalue` measure sharpness: the Hessian of a loss with
respect to α applied to a vector by double back-propagation, and its largest-magnitude
eigenvalue by power iteration (Zela et al., "Understanding and Robustifying DARTS", ICLR 2020).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from searchkd.spaces._nb201_net import OPS, TinyNetwork, cell_forward, make_op
from searchkd.spaces.nb201 import EDGES, format_cell

__all__ = ["MixedOp", "MixedCell", "NB201Supernet", "derive", "hvp", "dominant_eigenvalue", "OPS", "EDGES"]


class MixedOp(nn.Module):
    """The five NB201 ops on one edge; ``forward(x, weights)`` is their weighted sum, and
    ``forward(x, index=o)`` op ``o`` alone."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, c, affine=False, track=False) for name in OPS)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None, index: int | None = None) -> torch.Tensor:
        if index is not None:
            return self.ops[index](x)
        assert weights is not None
        out = weights[0] * self.ops[0](x)
        for w, op in zip(weights[1:], self.ops[1:]):
            out = out + w * op(x)
        return out


class MixedCell(nn.Module):
    """An NB201 cell whose six edges are :class:`MixedOp`\\ s; ``weights`` is 6×5, or ``hard``
    six op indices."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedOp(c) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None,  # type: ignore[override]
                hard: Sequence[int] | None = None) -> torch.Tensor:
        if hard is not None:
            return cell_forward(x, lambda k, h: self.edges[k](h, index=hard[k]))
        return cell_forward(x, lambda k, h: self.edges[k](h, weights[k]))


class NB201Supernet(TinyNetwork):
    """The DARTS supernet on the NB201 skeleton: width ``C``, ``N`` cells per stage.

    ``alphas`` (6×5) is the architecture; :meth:`weights` every other parameter.
    """

    def __init__(self, num_classes: int = 10, C: int = 16, N: int = 5) -> None:
        super().__init__([0] * len(EDGES), num_classes, C, N, make_cell=MixedCell, track=False)
        self.alphas = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)))

    def weights(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "alphas"]

    def forward_features(self, x: torch.Tensor, hard: Sequence[int] | None = None) -> torch.Tensor:  # type: ignore[override]
        w = None if hard is not None else F.softmax(self.alphas, dim=-1)
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h, w, hard) if isinstance(cell, MixedCell) else cell(h)
        return self.lastact(h)

    def forward(self, x: torch.Tensor, hard: Sequence[int] | None = None) -> torch.Tensor:  # type: ignore[override]
        return self.forward_head(self.forward_features(x, hard))

    def derive(self) -> str:
        """The derived cell: argmax of α on every edge, as an official cell string."""
        return derive(self.alphas)


def derive(alphas: torch.Tensor) -> str:
    """The cell string of the argmax op of each edge (ties: the earlier op in :data:`OPS`)."""
    return format_cell([int(i) for i in alphas.detach().argmax(dim=-1).tolist()])


def hvp(loss_fn: Callable[[], torch.Tensor], param: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The Hessian of ``loss_fn()`` with respect to ``param``, applied to ``v`` (double backprop)."""
    loss = loss_fn()
    (g,) = torch.autograd.grad(loss, param, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), param)
    return hv.detach()


def dominant_eigenvalue(loss_fn: Callable[[], torch.Tensor], param: torch.Tensor, *, iters: int = 20,
                        tol: float = 1e-4, seed: int = 0) -> float:
    """The largest-magnitude eigenvalue of the Hessian of ``loss_fn()`` w.r.t. ``param``, by power
    iteration with :func:`hvp` from a seeded random start; stops when it changes by < ``tol`` (relative)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(param.shape, generator=g).to(param)
    v = v / v.norm()
    lam = 0.0
    for _ in range(iters):
        hv = hvp(loss_fn, param, v)
        new = float((hv * v).sum())
        norm = hv.norm()
        if float(norm) == 0.0:
            return 0.0
        v = hv / norm
        if abs(new - lam) <= tol * max(abs(new), 1e-12):
            return new
        lam = new
    return lam
