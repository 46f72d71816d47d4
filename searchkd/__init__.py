"""searchkd: find the student architecture that distils best from a given teacher.

The public API lives in :mod:`searchkd.api` and is re-exported here lazily, so that
``import searchkd`` (and ``searchkd --help``) does not import torch.
"""

from __future__ import annotations

from typing import Any

from searchkd._version import __version__  # noqa: F401 (re-exported, in __all__)

_API = {
    "score", "score_archs", "search", "load_result", "distill", "pick_teacher", "correlation",
    "get_space", "list_spaces", "list_proxies", "list_strategies", "list_teachers",
}
__all__ = sorted(_API | {"__version__", "SearchKDError"})

from searchkd.errors import SearchKDError  # noqa: E402, F401 (re-exported, in __all__)


def __getattr__(name: str) -> Any:
    if name in _API:
        from searchkd import api

        return getattr(api, name)
    raise AttributeError(f"module 'searchkd' has no attribute {name!r}")
