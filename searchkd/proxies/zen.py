"""Zen-score (Lin et al., "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition",
ICCV 2021), as idstcv/ZenNAS ``compute_zen_score.py`` computes it.

Formula: with conv/linear weights re-drawn from N(0, 1) (BatchNorm weight 1, bias 0), a
Gaussian input x (the batch's shape), ε ~ N(0, 1) and α = 0.01, in train mode,

    zen = log( mean_b ‖f(x_b) − f(x_b + α ε_b)‖₁ ) + Σ_BN log sqrt( mean_c running_var_c ),

where f is the pre-global-pooling feature map (``forward_features``) and the running
variances are those the two forward passes leave in each BatchNorm (momentum as built,
starting from the fresh 1's). The images of the batch are not used, only its shape.

Departures: we average ``REPEATS`` = 3 repeats (each a fresh Gaussian init and input, drawn
from the engine's seeded RNG), resetting the BN running statistics before each one so the
repeats are independent (ZenNAS lets them accumulate across repeats; with its default of a
single repeat the two agree). A BatchNorm without running statistics contributes the batch
variance of its input on the perturbed pass instead.

On NAS-Bench-201 the BN term dominates (tens to ~160 against ~3-7 for the log-norm term):
with N(0, 1) weights the variance entering each BN grows along skip/pool paths and the
reduction blocks' un-normalised 1×1 shortcut conv, so cells rich in skips score high. Its rank
correlation with accuracy is therefore weak and swings with the cell sample (ρ from ≈0 to
≈.4 on random 40-60-cell subsets; NAS-Bench-Suite-Zero reports .35 on 1,000 cells).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from searchkd.proxies._grad import finite_or_nan
from searchkd.proxies._init import gaussian_init
from searchkd.proxies.base import register_proxy

ALPHA = 0.01
REPEATS = 3


def zen_once(net: nn.Module, shape: tuple[int, ...], device: torch.device) -> float:
    gaussian_init(net)
    bns = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    batch_var: dict[nn.Module, torch.Tensor] = {}

    def pre_hook(module, inputs):  # only for BNs that keep no running statistics
        x = inputs[0]
        batch_var[module] = x.transpose(0, 1).reshape(x.shape[1], -1).var(dim=1, unbiased=True)

    handles = [m.register_forward_pre_hook(pre_hook) for m in bns if m.running_var is None]
    for m in bns:
        if m.running_var is not None:
            m.reset_running_stats()
    try:
        x = torch.randn(shape, device=device)
        eps = torch.randn(shape, device=device)
        out = net.forward_features(x)
        out2 = net.forward_features(x + ALPHA * eps)
    finally:
        for h in handles:
            h.remove()
    score = torch.log((out - out2).abs().sum(dim=tuple(range(1, out.dim()))).mean()).item()
    for m in bns:
        var = m.running_var if m.running_var is not None else batch_var.get(m)
        if var is not None:
            score += 0.5 * math.log(float(var.double().mean()))
    return score


@register_proxy("zen", description="Zen-score: log‖f(x)−f(x+0.01ε)‖ of the pre-GAP map + Σ log σ_BN, Gaussian init (Lin 2021)")
def zen(net, batch, state=None) -> float:
    images = batch[0]
    net.train()
    with torch.no_grad():
        scores = [zen_once(net, tuple(images.shape), images.device) for _ in range(REPEATS)]
    return finite_or_nan(float(np.mean(scores)))
