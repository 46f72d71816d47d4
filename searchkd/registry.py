"""One small registry used by every plug-in family (spaces, proxies, strategies, teachers)."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Generic, Iterator, TypeVar

from searchkd.errors import SearchKDError

T = TypeVar("T")

__all__ = ["Registry", "SPACES", "PROXIES", "STRATEGIES", "TEACHERS"]


class Registry(Generic[T]):
    """Name → object, with a description for ``searchkd list``.

    A second registration of the same name is an error; so is an unknown name, whose
    message lists the known names and the closest match.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, obj: T | None = None, *, description: str | None = None) -> Any:
        """Register ``obj`` under ``name``; used bare (``register(name, obj)``) or as a decorator."""

        def add(o: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = o
            doc = description or (getattr(o, "__doc__", None) or "").strip().splitlines()
            self._descriptions[name] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return o

        if obj is not None:
            return add(obj)
        return add

    def get(self, name: str) -> T:
        """The object registered as ``name``; :class:`SearchKDError` naming the choices if none."""
        try:
            return self._items[name]
        except KeyError:
            raise SearchKDError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = sorted(self._items)
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(known)})"

    def description(self, name: str) -> str:
        self.get(name)
        return self._descriptions[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


SPACES: Registry[Callable[[], Any]] = Registry("space")
PROXIES: Registry[Any] = Registry("proxy")
STRATEGIES: Registry[Any] = Registry("strategy")
TEACHERS: Registry[Any] = Registry("teacher")
