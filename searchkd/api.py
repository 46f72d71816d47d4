"""The public Python surface of searchkd. The CLI calls these and nothing else."""

from __future__ import annotations

from typing import Any

from searchkd.errors import SearchKDError

__all__ = ["get_space", "list_spaces", "list_proxies", "list_strategies", "list_teachers", "describe"]


def _load_plugins() -> None:
    # Each subpackage imports its modules explicitly, which registers them.
    import searchkd.spaces  # noqa: F401
    import searchkd.teachers  # noqa: F401

    for mod in ("searchkd.proxies", "searchkd.strategies"):
        try:
            __import__(mod)
        except ModuleNotFoundError as e:  # a family not built yet
            if e.name != mod:
                raise


def get_space(name: str) -> Any:
    """The search space registered as ``name``."""
    from searchkd.spaces import get_space as _get

    return _get(name)


def _registry(what: str) -> Any:
    from searchkd import registry

    _load_plugins()
    return {"spaces": registry.SPACES, "proxies": registry.PROXIES,
            "strategies": registry.STRATEGIES, "teachers": registry.TEACHERS}[what]


def list_spaces() -> list[str]:
    return _registry("spaces").names()


def list_proxies() -> list[str]:
    return _registry("proxies").names()


def list_strategies() -> list[str]:
    return _registry("strategies").names()


def list_teachers() -> list[str]:
    return _registry("teachers").names()


def describe(what: str) -> list[tuple[str, str]]:
    """``(name, one-line description)`` for every member of a registry family."""
    if what not in ("spaces", "proxies", "strategies", "teachers"):
        raise SearchKDError(f"unknown family {what!r} (spaces, proxies, strategies, teachers)")
    reg = _registry(what)
    return [(n, reg.description(n)) for n in reg.names()]
