"""Weight-sharing supernets and their training: :mod:`~searchkd.supernets.superlm` (AutoDistil's
SuperLM over the BERT sub-spaces) and :mod:`~searchkd.supernets.nb201_supernet` (the DARTS
mixed-op supernet of NAS-Bench-201).

The names below are loaded on first use, so that ``import searchkd.supernets`` stays free of
torch until a supernet is actually wanted.
"""

from __future__ import annotations

from typing import Any

_NB201 = ("NB201Supernet", "derive", "dominant_eigenvalue")
__all__ = ["SuperLM", "SuperLMConfig", "relation_loss", "relations", "RELATION_LOSSES", *_NB201]


def __getattr__(name: str) -> Any:
    if name in _NB201:
        from searchkd.supernets import nb201_supernet

        return getattr(nb201_supernet, name)
    if name in __all__:
        from searchkd.supernets import superlm

        return getattr(superlm, name)
    raise AttributeError(f"module 'searchkd.supernets' has no attribute {name!r}")
