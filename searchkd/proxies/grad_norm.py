"""Gradient norm, the baseline proxy of Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021.

Formula: the sum over conv/linear layers of the Euclidean (Frobenius) norm of the layer's
weight gradient of the batch's mean cross-entropy:

    grad_norm = Σ_layers ‖∂L/∂W_layer‖₂.

As in zero-cost-nas (``bn=True``): train mode, BatchNorm on batch statistics, one batch; a
layer the loss does not reach contributes 0.
"""

from __future__ import annotations

import torch

from searchkd.proxies._grad import finite_or_nan, param_grads
from searchkd.proxies.base import register_proxy


@register_proxy("grad_norm", description="Σ over conv/linear layers of ‖∂L/∂W‖₂, one batch, train-mode BN (Abdelfattah 2021)")
def grad_norm(net, batch, state=None) -> float:
    _, grads = param_grads(net, batch)
    total = 0.0
    with torch.no_grad():
        for g in grads:
            if g is not None:
                total += float(g.double().norm())
    return finite_or_nan(total)
