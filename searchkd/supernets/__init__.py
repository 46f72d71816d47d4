"""Weight-sharing supernets and their training: :mod:`~searchkd.supernets.superlm` (AutoDistil's
SuperLM over the BERT sub-spaces).

The names below are loaded on first use, so that ``import searchkd.supernets`` stays free of
torch until a supernet is actually wanted.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SuperLM", "SuperLMConfig", "relation_loss", "relations", "RELATION_LOSSES"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from searchkd.supernets import superlm

        return getattr(superlm, name)
    raise AttributeError(f"module 'searchkd.supernets' has no attribute {name!r}")
