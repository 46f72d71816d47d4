"""Search spaces: one per file, registered in :data:`searchkd.registry.SPACES`."""

from __future__ import annotations

from searchkd.spaces import bert, nb201, resnet_cifar  # noqa: F401  (registration)
from searchkd.spaces.base import SearchSpace, cost_for, count_cost

__all__ = ["SearchSpace", "cost_for", "count_cost", "get_space"]


def get_space(name: str) -> SearchSpace:
    """The space registered as ``name`` (a fresh instance), or an NNI 3.0 model space named
    ``nni:MODULE:ATTR`` (see :mod:`searchkd.spaces.nni_space`)."""
    from searchkd.registry import SPACES

    if isinstance(name, str) and name.startswith("nni:"):
        from searchkd.spaces.nni_space import NNISpace

        return NNISpace.from_spec(name)

    return SPACES.get(name)()
