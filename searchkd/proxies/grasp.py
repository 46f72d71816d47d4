"""GraSP (Wang et al., "Picking Winning Tickets Before Training by Preserving Gradient Flow",
ICLR 2020), as a NAS proxy in Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
ICLR 2021.

Formula: with g = ∂L/∂θ (held constant) and H the Hessian of the batch's mean cross-entropy
L over the conv/linear weights θ,

    grasp = Σ_{conv/linear weights θ} Σ (−θ ⊙ H g),

the sign convention of zero-cost-nas's ``compute_grasp_per_weight`` (which returns
``-weight * weight.grad`` after back-propagating z = Σ g·∂L/∂θ). Temperature T=1, one
iteration, train mode with BatchNorm on batch statistics (``bn=True``).

Departure: the reference runs two identical forwards (one for g, one for the graph of
∂L/∂θ); we take g as the detached value of the differentiable gradient of a single forward,
which is the same number in train mode and halves the cost. The reference itself is unstable
(two of its runs with different seeds agree at ρ≈.17 on NB201, ``shared/REFERENCES.md``).
"""

from __future__ import annotations

import torch

from searchkd.proxies._grad import finite_or_nan, param_grads
from searchkd.proxies.base import register_proxy


@register_proxy("grasp", description="GraSP: Σ(−θ ⊙ Hg) over conv/linear weights, zero-cost-nas sign (Wang 2020; Abdelfattah 2021)")
def grasp(net, batch, state=None) -> float:
    layers, grads = param_grads(net, batch, create_graph=True)
    used = [(m.weight, g) for m, g in zip(layers, grads) if g is not None]
    if not used:
        return 0.0
    z = sum((g.detach() * g).sum() for _, g in used)
    if not z.requires_grad:  # no second-order path (e.g. a purely linear net): Hg = 0
        return 0.0
    hg = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    total = 0.0
    with torch.no_grad():
        for (w, _), h in zip(used, hg):
            if h is not None:
                total += float((-w * h).sum().double())
    return finite_or_nan(total)
