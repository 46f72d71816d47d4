"""MeCo (Jiang et al., "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum
Eigenvalue of Correlation", NeurIPS 2023), as the authors' NAS-Bench-201 script computes it.

Formula: one forward pass of ONE image (the first of the batch; the authors' default batch
size is 1) in train mode. Every module's output feature map F (C×H×W for that image) gives a
C×C Pearson correlation matrix P over channels, the H·W positions being the observations;
non-finite entries of P (constant channels) are set to 0; the module contributes the
smallest eigenvalue of P:

    meco = Σ_{modules m} λ_min(P(F_m)).

As the reference, the hooks are on *every* module (``named_modules()``), so a container
whose output is a child's output counts it again (our NB201 ``ReLUConvBN`` counts its BN
output twice where zero-cost-nas's model, with one more wrapper, counts it three times), and
outputs that are not maps (the logits) contribute λ_min of an all-zero matrix, 0. Layers
whose value is NaN or ±inf are skipped. This is MeCo proper: the ``meco_opt`` variant (C/8 ×
λ_min over 8 random channels) is not implemented.

Departure: eigenvalues from ``eigvalsh`` in float64 (P is symmetric; the reference calls the
general ``torch.linalg.eig`` in float32 and keeps the real parts).
"""

from __future__ import annotations

import math

import torch

from searchkd.proxies.base import register_proxy


def min_eig_corr(feature: torch.Tensor) -> float:
    """λ_min of the channel correlation of one C×... feature map (non-finite entries → 0)."""
    f = feature.detach().reshape(feature.shape[0], -1).double()
    if f.shape[0] < 2 and f.shape[1] < 2:
        return 0.0
    corr = torch.corrcoef(f)
    corr = torch.where(torch.isfinite(corr), corr, torch.zeros_like(corr))
    return float(torch.linalg.eigvalsh(corr)[0])


@register_proxy("meco", description="MeCo: Σ over modules of λ_min of the channel correlation of one image's feature map (Jiang 2023)")
def meco(net, batch, state=None) -> float:
    images = batch[0][:1]
    net.train()
    values: list[float] = []

    def hook(module, inputs, out):
        if isinstance(out, torch.Tensor) and out.dim() >= 3:
            values.append(min_eig_corr(out[0]))

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        with torch.no_grad():
            net(images)
    finally:
        for h in handles:
            h.remove()
    return float(sum(v for v in values if math.isfinite(v)))
