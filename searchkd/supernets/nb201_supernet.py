"""The NAS-Bench-201 DARTS supernet: every cell edge a mixed operation over the five NB201 ops.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search" (ICLR 2019), on the
NAS-Bench-201 skeleton as the benchmark's own DARTS baseline sets it up (Dong & Yang, ICLR
2020): one architecture parameter α (6 edges × 5 ops) shared by every cell of every stage;
edge k of a cell outputs Σ_o softmax(α_k)_o · op_o(x). The skeleton (stem, residual reduction
blocks, BN-ReLU, classifier) and the ops are those of the evaluation network
(:mod:`searchkd.spaces._nb201_net`). BatchNorm as in the benchmark's ``TinyNetworkDarts``: the
mixed ops' BNs have no learnt scale and (NB201's ``--track_running_stats 0``) no running
statistics; the stem, last-activation and residual-block BNs are plain ``BatchNorm2d`` (learnt
scale, running statistics). NB201's script takes the mixed-op tracking as an argument (0 or 1);
searchkd fixes it at 0, so a mixed op always normalises with its batch's statistics.

**Derivation** is the argmax of α on each edge, written as the official cell string. As in
NAS-Bench-201's DARTS, ``none`` is a candidate like any other: a cell whose edges derive
``none`` is kept as it is (DARTS on NB201 is known to collapse onto parameter-free ops).

:meth:`NB201Supernet.forward` with ``hard`` (six op indices) runs only the chosen op on each
edge: the derived network evaluated with the supernet's (inherited) weights.

:func:`hvp` and :func:`dominant_eigenvalue` measure sharpness: the Hessian of a loss with
respect to α applied to a vector by double back-propagation, and its largest-magnitude
eigenvalue by power iteration (Zela et al., "Understanding and Robustifying DARTS", ICLR 2020).
:func:`second_order_alpha_grad` is DARTS-V2's α gradient (the unrolled step and the
finite-difference Hessian-vector product of Liu et al., Eq. 7-8, as NB201's ``DARTS-V2.py``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from searchkd.spaces._nb201_net import OPS, TinyNetwork, cell_forward, make_op
from searchkd.spaces.nb201 import EDGES, format_cell

__all__ = ["MixedOp", "MixedCell", "NB201Supernet", "derive", "hvp", "dominant_eigenvalue", "frozen_stats",
           "second_order_alpha_grad", "OPS", "EDGES"]


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
        super().__init__([0] * len(EDGES), num_classes, C, N, make_cell=MixedCell, track=True)
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


@contextmanager
def frozen_stats(model: nn.Module) -> Iterator[None]:
    """Forward passes inside leave every BN's running statistics as they were (momentum 0), so a
    measurement or an extra forward in train mode does not change the model."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (mom, n) in zip(bns, saved):
            m.momentum = mom
            m.num_batches_tracked.copy_(n)


def second_order_alpha_grad(model: nn.Module, alphas: torch.Tensor, weights: Sequence[torch.Tensor],
                            w_loss: Callable[[], torch.Tensor], a_loss: Callable[[], torch.Tensor], *,
                            lr: float, weight_decay: float, momentum: float,
                            momentum_bufs: Sequence[torch.Tensor | None], r: float = 1e-2) -> tuple[torch.Tensor, float]:
    """DARTS-V2's α gradient (Liu et al. 2019, Eq. 7-8) and the α loss at the unrolled weights.

    w' = w − lr·(momentum·buf + ∇_w L_train(w) + weight_decay·w) (one SGD step as NB201's
    ``DARTS-V2.py`` unrolls it: plain momentum, no Nesterov, no clipping); then
    ∇_α L_val(w', α) − lr · [∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)] / (2ε), w^± = w ± ε·∇_{w'} L_val,
    ε = r / ‖∇_{w'} L_val‖. ``w_loss``/``a_loss`` are closures over the model's current parameters;
    every forward runs under :func:`frozen_stats`, and ``weights`` are restored exactly.
    """
    weights = list(weights)
    saved = [w.detach().clone() for w in weights]
    with frozen_stats(model):
        grads = torch.autograd.grad(w_loss(), weights)
        with torch.no_grad():
            for w, g, buf in zip(weights, grads, momentum_bufs):
                step = g + weight_decay * w
                if buf is not None:
                    step = step + momentum * buf
                w.sub_(lr * step)
        loss = a_loss()
        ga, *gw = torch.autograd.grad(loss, [alphas, *weights])
        eps = float(r / torch.cat([g.reshape(-1) for g in gw]).norm().clamp_min(1e-12))
        hv = []
        for sign in (1.0, -1.0):  # w + ε v, then w − ε v
            with torch.no_grad():
                for w, w0, v in zip(weights, saved, gw):
                    w.copy_(w0).add_(v, alpha=sign * eps)
            (g,) = torch.autograd.grad(w_loss(), [alphas])
            hv.append(g)
        with torch.no_grad():
            for w, w0 in zip(weights, saved):
                w.copy_(w0)
    return ga - lr * (hv[0] - hv[1]) / (2 * eps), float(loss.detach())
