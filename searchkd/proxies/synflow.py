"""SynFlow (Tanaka et al., "Pruning neural networks without any data by iteratively conserving
synaptic flow", NeurIPS 2020), as a NAS proxy in Abdelfattah et al., "Zero-Cost Proxies for
Lightweight NAS", ICLR 2021.

Formula: with every parameter replaced by its absolute value and the network fed a single
all-ones image in double precision, ``R = sum(f(1))`` and

    synflow = Σ_{conv/linear weights θ} Σ |θ ⊙ ∂R/∂θ|.

BatchNorm: the reference registers synflow with ``bn=False``: the measured copy has no
BatchNorm. The NASLib code that produced the published NAS-Bench-201 scores does this by
making every BN module a no-op (``copynet``), which is what we do (zero-cost-nas's own NB201
model keeps BN only in its two residual reduction blocks; the rankings agree at ρ≈.999 per
``shared/REFERENCES.md``). With BN gone the sign-free network is a positive polynomial in
the weights, so no batch statistics enter and the score needs no data, only the image shape.

Departures: the net is a throwaway copy, so signs are not restored. A score that overflows
double precision comes back as NaN (the engine scores it WORST); NASLib reports log(synflow),
which ranks identically.
"""

from __future__ import annotations

import torch

from searchkd.proxies._grad import drop_batchnorm, finite_or_nan, weight_layers
from searchkd.proxies.base import register_proxy


@register_proxy("synflow", needs_data=False,
                description="SynFlow: Σ|θ ⊙ ∂R/∂θ| of the |θ| network on an all-ones image, BN dropped (Tanaka 2020; Abdelfattah 2021)")
def synflow(net, batch, state=None) -> float:
    images = batch[0]
    drop_batchnorm(net)
    net.double().train()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    layers = weight_layers(net)
    for p in net.parameters():
        p.requires_grad_(False)
    weights = [m.weight for m in layers]
    for w in weights:
        w.requires_grad_(True)
    ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    out = net(ones)
    grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    with torch.no_grad():
        for w, g in zip(weights, grads):
            if g is not None:
                total += (w * g).abs().sum()
    return finite_or_nan(total.item())
