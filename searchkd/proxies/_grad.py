"""Shared helpers of the gradient-based zero-cost proxies (snip, grad_norm, grasp, fisher,
jacob_cov, synflow).

Everything here follows the conventions of the zero-cost-nas reference code
(Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021): the scored
parameters are the ``weight`` tensors of every ``nn.Conv2d`` and ``nn.Linear``, the loss is
the mean cross-entropy of the batch, and the network is in train mode (BatchNorm uses the
batch statistics) unless a proxy says otherwise.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["weight_layers", "ce_loss", "param_grads", "drop_batchnorm", "finite_or_nan"]


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """The ``nn.Conv2d`` and ``nn.Linear`` modules of ``net``, in ``modules()`` order."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def ce_loss(net: nn.Module, batch: Sequence[Any]) -> torch.Tensor:
    """Mean cross-entropy of ``net`` on ``batch`` (train mode)."""
    images, labels = batch[0], batch[1]
    net.train()
    return F.cross_entropy(net(images), labels)


def param_grads(net: nn.Module, batch: Sequence[Any], layers: list[nn.Module] | None = None,
                create_graph: bool = False) -> tuple[list[nn.Module], list[torch.Tensor | None]]:
    """The layers and d(cross-entropy)/d(weight) of each; None for a weight the loss does not reach."""
    layers = weight_layers(net) if layers is None else layers
    for p in net.parameters():
        p.requires_grad_(False)
    weights = [m.weight for m in layers]
    for w in weights:
        w.requires_grad_(True)
    loss = ce_loss(net, batch)
    grads = torch.autograd.grad(loss, weights, allow_unused=True, create_graph=create_graph)
    return layers, list(grads)


def _identity_forward(x: torch.Tensor) -> torch.Tensor:
    return x


def drop_batchnorm(net: nn.Module) -> int:
    """Make every BatchNorm module the identity (the reference's ``get_prunable_copy(bn=False)``,
    whose generic version replaces each BN's forward by a no-op). Returns how many were dropped."""
    n = 0
    for m in net.modules():
        if isinstance(m, _BatchNorm):
            m.forward = _identity_forward  # type: ignore[method-assign]
            n += 1
    return n


def finite_or_nan(value: float) -> float:
    """``value`` as a float; NaN where it is not finite (the engine scores NaN as WORST)."""
    value = float(value)
    return value if math.isfinite(value) else math.nan
