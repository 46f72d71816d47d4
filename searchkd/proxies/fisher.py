"""Fisher (Theis et al., "Faster gaze prediction with dense networks and Fisher pruning",
2018; Turner et al., "BlockSwap", ICLR 2020), as a NAS proxy in Abdelfattah et al.,
"Zero-Cost Proxies for Lightweight NAS", ICLR 2021.

Formula: for every conv/linear layer with output activation a (N×K×H×W, or N×K) and
g = ∂L/∂a of the batch's mean cross-entropy L, the per-channel saliency is

    Δ_k = ½ · mean_n ( Σ_{h,w} a_{nkhw} g_{nkhw} )²,

and zero-cost-nas broadcasts Δ_k over the channel's weights (``reshape_elements``), so the
summed score weights each channel by the layer's fan-in ``prod(weight.shape[1:])``:

    fisher = Σ_layers fan_in(layer) · Σ_k Δ_k.

Train mode with BatchNorm on batch statistics (``bn=True``). The activation is the layer's
own output (before BatchNorm), as the reference's identity ``dummy`` module sees it.

Departure: the reference takes g with the deprecated ``register_backward_hook`` on an
``nn.Identity`` after each layer (it lands on the layer's own autograd node). We keep each
layer's output from a forward hook and ask autograd for ∂L/∂(that output) directly
(``torch.autograd.grad`` on the kept tensors, the gradient ``retain_grad`` would store): the
same quantity, with no deprecated API and without computing the weight gradients.
"""

from __future__ import annotations

import math

import torch

from searchkd.proxies._grad import finite_or_nan, weight_layers
from searchkd.proxies.base import register_proxy


@register_proxy("fisher", description="Fisher: Σ_layers fan_in·Σ_k ½·mean_n(Σ_hw a·∂L/∂a)² on conv/linear outputs (Theis 2018; Abdelfattah 2021)")
def fisher(net, batch, state=None) -> float:
    images, labels = batch[0], batch[1]
    net.train()
    for p in net.parameters():
        p.requires_grad_(False)
    layers = weight_layers(net)
    for m in layers:  # so that every layer output is part of the graph
        m.weight.requires_grad_(True)
    seen: list[tuple[torch.nn.Module, torch.Tensor]] = []

    def forward_hook(module, inputs, out):
        if isinstance(out, torch.Tensor) and out.requires_grad:
            seen.append((module, out))

    handles = [m.register_forward_hook(forward_hook) for m in layers]
    try:
        loss = torch.nn.functional.cross_entropy(net(images), labels)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(loss, [a for _, a in seen], allow_unused=True)
    total = 0.0
    with torch.no_grad():
        for (module, act), g in zip(seen, grads):
            if g is None:
                continue
            g_nk = (act * g).sum(dim=tuple(range(2, act.dim()))) if act.dim() > 2 else act * g
            total += float(g_nk.double().pow(2).mean(0).mul(0.5).sum()) * math.prod(module.weight.shape[1:])
    return finite_or_nan(total)
