"""Training-free proxies: one per file, registered in :data:`searchkd.registry.PROXIES`."""

from __future__ import annotations

import importlib

from searchkd.proxies.base import WORST, ProxySpec, Scorer, get_proxy, register_proxy

__all__ = ["WORST", "ProxySpec", "Scorer", "get_proxy", "register_proxy"]

# Explicit imports register each proxy; a module not written yet is skipped.
for _mod in ("diswot", "capacity_gap", "cost", "synflow", "snip", "grad_norm", "grasp", "fisher",
             "jacob_cov", "nwot", "zen", "meco"):
    try:
        importlib.import_module(f"searchkd.proxies.{_mod}")
    except ModuleNotFoundError as _e:
        if _e.name != f"searchkd.proxies.{_mod}":
            raise
