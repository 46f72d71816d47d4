"""Jacobian covariance (Mellor et al., "Neural Architecture Search without Training", v1 of
arXiv:2006.04647, 2020), as evaluated in Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021 (``jacob_cov``).

Formula: J is the B×D matrix of input gradients ∂(Σ_c f_c(x_b))/∂x_b of the summed logits
(one row per image of the batch, the reference's ``y.backward(ones_like(y))``), Σ_J its
B×B Pearson correlation matrix (``np.corrcoef``) with eigenvalues λ_i, and

    jacob_cov = −Σ_i [ log(λ_i + k) + 1/(λ_i + k) ],   k = 1e-5.

Train mode with BatchNorm on batch statistics (``bn=True``). Eigenvalues come from
``eigvalsh`` in float64 (Σ_J is symmetric; the reference's general ``eig`` gives the same
values). A batch whose correlation is undefined (a Jacobian row of zeros, e.g. an all-``none``
cell) gives NaN, which the engine scores WORST, as the reference does.
"""

from __future__ import annotations

import numpy as np
import torch

from searchkd.proxies._grad import finite_or_nan
from searchkd.proxies.base import register_proxy

K = 1e-5


def jacob_cov_score(jacobians: np.ndarray) -> float:
    """The score of a B×D Jacobian matrix (rows = images)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(np.asarray(jacobians, dtype=np.float64))
        if not np.all(np.isfinite(corr)):
            return float("nan")
        v = np.linalg.eigvalsh(corr)
        return float(-np.sum(np.log(v + K) + 1.0 / (v + K)))


@register_proxy("jacob_cov", description="NASWOT v1: −Σ(log(λ+1e-5)+1/(λ+1e-5)) of the correlation of input Jacobians (Mellor 2020; Abdelfattah 2021)")
def jacob_cov(net, batch, state=None) -> float:
    images = batch[0]
    net.train()
    for p in net.parameters():
        p.requires_grad_(False)
    x = images.detach().clone().requires_grad_(True)
    y = net(x)
    (jac,) = torch.autograd.grad(y, x, grad_outputs=torch.ones_like(y))
    return finite_or_nan(jacob_cov_score(jac.reshape(jac.shape[0], -1).cpu().numpy()))
