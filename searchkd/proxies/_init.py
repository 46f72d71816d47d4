"""The Gaussian re-initialisation the DisWOT and Zen-NAS reference codes apply."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["gaussian_init"]


def gaussian_init(net: nn.Module) -> nn.Module:
    """Conv/linear weights N(0,1) and biases 0; norm-layer weights 1 and biases 0."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (_BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return net
