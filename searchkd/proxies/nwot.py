"""NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021).

Formula: every rectified unit u of the network gives each image b of the batch a binary
code c_b(u) = [input of the ReLU at u > 0]. The B×B kernel counts, for each pair of images,
the units on which their codes agree (total units minus the Hamming distance),

    K = Σ_ReLUs  C Cᵀ + (1 − C)(1 − C)ᵀ,     nwot = log |det K|  (``slogdet``).

As BayesWatch/nas-without-training: the codes are the inputs of every ReLU, taken on a
forward pass of the real batch in train mode (BatchNorm on batch statistics).

Which ReLUs: BayesWatch hooks every ``nn.ReLU`` module. We instead intercept every call of
``torch.nn.functional.relu`` (which ``nn.ReLU`` modules call), ``torch.relu``/``relu_`` and
``Tensor.relu``/``relu_`` through a ``TorchFunctionMode`` for the duration of the forward.
On NAS-Bench-201 networks this is exactly the set of ``nn.ReLU`` modules (each called once;
tested), and it also covers networks that call ``F.relu`` directly, like the CIFAR ResNets,
which have no ``nn.ReLU`` module to hook.

A singular K (e.g. an all-``none`` NB201 cell) gives −inf, scored WORST by the engine (the
published NASLib column holds −inf for such a cell too).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from searchkd.proxies.base import register_proxy

_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class ReLUCodes(TorchFunctionMode):
    """Accumulates the NASWOT kernel of every ReLU call made while the mode is active."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.K = torch.zeros(batch_size, batch_size, dtype=torch.float64)
        self.units = 0
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELUS and args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 2:
            self.add(args[0])
        return func(*args, **kwargs)

    def add(self, pre: torch.Tensor) -> None:
        with torch.no_grad():
            c = (pre.detach().reshape(pre.shape[0], -1) > 0).float()
            n = c.shape[1]
            # C Cᵀ + (1−C)(1−C)ᵀ = 2 C Cᵀ − s1ᵀ − 1sᵀ + n with s the rows' counts of ones: one
            # product instead of two. All entries are integers ≤ n < 2²⁴, exact in float32.
            cc = c @ c.t()
            s = cc.diagonal()
            k = 2.0 * cc - s[:, None] - s[None, :] + n
        self.K += k.double().cpu()
        self.units += n
        self.calls += 1


def nwot_kernel(net: torch.nn.Module, images: torch.Tensor) -> ReLUCodes:
    """Run ``net`` on ``images`` (train mode, no grad) and return the accumulated codes."""
    net.train()
    codes = ReLUCodes(images.shape[0])
    with torch.no_grad(), codes:
        net(images)
    return codes


@register_proxy("nwot", description="NASWOT: logdet of the ReLU-code agreement kernel over the batch (Mellor 2021)")
def nwot(net, batch, state=None) -> float:
    codes = nwot_kernel(net, batch[0])
    sign, logdet = np.linalg.slogdet(codes.K.numpy())
    return float(logdet)
