"""Search strategies (ask/tell), registered in :data:`searchkd.registry.STRATEGIES`.

Each module is imported explicitly here, which registers it. ``nsga2`` imports pymoo only
when an instance is made.
"""

from __future__ import annotations

from searchkd.strategies import autodistil, darts, evolution, nsga2, random, sd_darts  # noqa: F401  (registration)
from searchkd.strategies.base import Strategy, as_objectives, fitness_key

__all__ = ["Strategy", "as_objectives", "fitness_key", "get_strategy"]


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered as ``name`` (:class:`SearchKDError` if unknown)."""
    from searchkd.registry import STRATEGIES

    return STRATEGIES.get(name)
