"""Training-free proxies: one per file, registered in :data:`searchkd.registry.PROXIES`."""

from __future__ import annotations

from searchkd.proxies import (  # noqa: F401  (registration)
    capacity_gap,
    cost,
    diswot,
    fisher,
    grad_norm,
    grasp,
    jacob_cov,
    kd,
    meco,
    nwot,
    snip,
    synflow,
    zen,
    zico,
)
from searchkd.proxies.base import WORST, ProxySpec, Scorer, get_proxy, register_proxy

__all__ = ["WORST", "ProxySpec", "Scorer", "get_proxy", "register_proxy"]
