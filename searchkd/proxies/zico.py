"""ZiCo (Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
Gradients", ICLR 2023).

Formula: the batch is split into ``M`` mini-batches (here the two halves of the proxy
batch); for every weight θ of every conv/linear layer l, ``g_m(θ)`` is ∂L_m/∂θ of the
mini-batch's mean cross-entropy. Over the M mini-batches, with the population std,

    zico = Σ_l log Σ_{θ ∈ l, std(g(θ)) > 0}  mean_m |g_m(θ)| / std_m(g_m(θ))

(a layer whose inner sum is 0 adds nothing). The paper's argument: a network trains
faster and generalises better when its gradients are large relative to their variation
across batches. As in the authors' code: train mode (BatchNorm on the mini-batch's
statistics), the networks' default init, ``weight`` tensors of ``nn.Conv2d``/``nn.Linear``.
The published NAS-Bench-201 CIFAR-10 figures are ρ ≈ 0.80 with test accuracy and a
searched cell of 94.00 ± 0.4 %.

With two mini-batches ``mean|g|/std(g) = (|g₁| + |g₂|) / |g₁ − g₂|``.
"""

from __future__ import annotations

import math

import torch

from searchkd.errors import SearchKDError
from searchkd.proxies._grad import finite_or_nan, param_grads
from searchkd.proxies.base import register_proxy

#: mini-batches the proxy batch is split into
SPLITS = 2


def zico_from_grads(per_batch: list[list[torch.Tensor | None]]) -> float:
    """The ZiCo sum from ``per_batch[m][l]``, layer l's weight gradient on mini-batch m."""
    total = 0.0
    for layer in zip(*per_batch):
        if any(g is None for g in layer):
            continue  # the loss does not reach this layer
        g = torch.stack([x.detach().double().reshape(-1) for x in layer])
        std = g.std(dim=0, unbiased=False)
        ok = std > 0
        s = float((g.abs().mean(dim=0)[ok] / std[ok]).sum())
        if s > 0:
            total += math.log(s)
    return total


@register_proxy("zico", description="Σ_layers log Σ mean|∂L/∂W| / std(∂L/∂W) over two half-batches (Li 2023)")
def zico(net, batch, state=None) -> float:
    images, labels = batch[0], batch[1]
    if images.shape[0] < 2 * SPLITS:
        raise SearchKDError(f"zico needs a batch of at least {2 * SPLITS} images, got {images.shape[0]}")
    per_batch = []
    for x, y in zip(images.chunk(SPLITS), labels.chunk(SPLITS)):
        _, grads = param_grads(net, (x, y))
        per_batch.append(grads)
    return finite_or_nan(zico_from_grads(per_batch))
