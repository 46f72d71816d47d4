"""SNIP (Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity",
ICLR 2019), as a NAS proxy in Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
ICLR 2021.

Formula: the per-weight connection sensitivity |∂L/∂c ⊙ 1| of a multiplicative mask c=1,
which equals |∂L/∂θ ⊙ θ|, summed over every conv/linear weight:

    snip = Σ_{conv/linear weights θ} Σ |θ ⊙ ∂L/∂θ|,   L = mean cross-entropy of the batch.

As in zero-cost-nas (``bn=True``): train mode, BatchNorm on batch statistics, one batch.
Departure: the gradient is taken with respect to the weights directly rather than through an
explicit mask parameter (the same number).
"""

from __future__ import annotations

import torch

from searchkd.proxies._grad import finite_or_nan, param_grads
from searchkd.proxies.base import register_proxy


@register_proxy("snip", description="SNIP: Σ|θ ⊙ ∂L/∂θ| over conv/linear weights, one batch, train-mode BN (Lee 2019; Abdelfattah 2021)")
def snip(net, batch, state=None) -> float:
    layers, grads = param_grads(net, batch)
    total = 0.0
    with torch.no_grad():
        for m, g in zip(layers, grads):
            if g is not None:
                total += float((m.weight * g).abs().sum().double())
    return finite_or_nan(total)
