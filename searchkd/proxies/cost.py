"""Cost proxies: the student's size, from :func:`searchkd.spaces.count_cost`.

``params``: all parameters, in millions. ``flops``: multiply-accumulates of conv and linear
layers for one image of the batch's size (bias adds included), in millions, as NAS-Bench-201
reports them. Neither uses the images; both are higher-is-better like every proxy (bigger
NB201 cells train to higher accuracy; Abdelfattah et al. 2021 and NAS-Bench-Suite-Zero use
them as baselines).
"""

from __future__ import annotations

from searchkd.proxies.base import register_proxy
from searchkd.spaces.base import count_cost


def _input_size(batch) -> tuple[int, int, int]:
    images = batch[0] if batch is not None else None
    return tuple(images.shape[1:]) if images is not None and images.dim() == 4 else (3, 32, 32)


@register_proxy("params", needs_data=False, description="parameter count of the student, in millions")
def params(net, batch, state=None) -> float:
    return float(sum(p.numel() for p in net.parameters()) / 1e6)


@register_proxy("flops", needs_data=False, description="FLOPs (conv/linear MACs of one image) of the student, in millions")
def flops(net, batch, state=None) -> float:
    return float(count_cost(net.cpu(), input_size=_input_size(batch))["flops"])
