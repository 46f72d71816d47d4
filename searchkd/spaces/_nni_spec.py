"""Naming NNI model spaces: ``nni:MODULE:ATTR`` / ``nni:FILE.py:ATTR`` specs, importing NNI
lazily, and loading the ``ModelSpace`` factory a spec names (see :mod:`searchkd.spaces.nni_space`)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

from searchkd.errors import SearchKDError

__all__ = ["import_nni", "split_teacher_spec", "absolute_spec", "load_factory", "takes_num_classes"]


def import_nni() -> Any:
    """``nni.nas.nn.pytorch`` (lazily: ``import nni`` costs seconds); a one-line error without it."""
    try:
        with warnings.catch_warnings():  # nni 3.0 warns about torch.nn classes newer than it
            warnings.simplefilter("ignore", RuntimeWarning)
            import nni.nas.nn.pytorch as nas_nn
    except ImportError as e:
        raise SearchKDError(f"nni spaces need NNI 3.0 and pytorch-lightning ({e}): pip install 'searchkd[nni]'") from None
    return nas_nn


def split_teacher_spec(spec: str) -> tuple[str, str]:
    """``nni:MODULE:ATTR:ARCH`` → (``nni:MODULE:ATTR``, ``ARCH``)."""
    parts = spec.split(":", 3)
    if len(parts) != 4 or not all(parts[1:]):
        raise SearchKDError(f"an nni teacher is nni:MODULE:ATTR:ARCH, got {spec!r}")
    return ":".join(parts[:3]), parts[3]


def load_factory(spec: str) -> Callable[..., Any]:
    """The ModelSpace class or factory that ``nni:MODULE:ATTR`` names."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "nni" or not parts[1] or not all(p.isidentifier() for p in parts[2].split(".")):
        raise SearchKDError(f"an nni space is nni:MODULE:ATTR or nni:FILE.py:ATTR "
                            f"(e.g. nni:examples.nni_space:TinySpace), got {spec!r}")
    where, attr = parts[1], parts[2]
    import_nni()
    try:
        mod = _import_file(where) if where.endswith(".py") else importlib.import_module(where)
    except SearchKDError:
        raise
    except Exception as e:  # the user's module: any error there is theirs to fix
        first = (str(e).strip().splitlines() or [""])[0][:200]
        hint = "; is its folder on PYTHONPATH?" if isinstance(e, ModuleNotFoundError) and not where.endswith(".py") else ""
        raise SearchKDError(f"{spec}: cannot import {where!r} ({type(e).__name__}: {first}{hint})") from None
    obj: Any = mod
    for name in attr.split("."):
        if not hasattr(obj, name):
            raise SearchKDError(f"{spec}: {where!r} has no attribute {attr!r}")
        obj = getattr(obj, name)
    if not callable(obj):
        raise SearchKDError(f"{spec}: {attr!r} ({type(obj).__name__}) is not a ModelSpace class or a zero-argument factory")
    return obj


def _import_file(path: str) -> Any:
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise SearchKDError(f"nni space file not found: {path}")
    name = "_searchkd_nni_" + hashlib.sha1(str(file).encode()).hexdigest()[:12]
    if name not in sys.modules:
        loader_spec = importlib.util.spec_from_file_location(name, file)
        mod = importlib.util.module_from_spec(loader_spec)  # type: ignore[arg-type]
        sys.modules[name] = mod
        try:
            loader_spec.loader.exec_module(mod)  # type: ignore[union-attr]
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def absolute_spec(spec: str) -> str:
    """A space (or ``…:ARCH`` teacher) spec with a relative ``FILE.py`` made absolute
    (Ray workers run in another directory)."""
    parts = spec.split(":", 3)
    if len(parts) >= 3 and parts[1].endswith(".py"):
        parts[1] = str(Path(parts[1]).expanduser().resolve())
    return ":".join(parts)


def takes_num_classes(factory: Callable[..., Any]) -> bool:
    fn = getattr(factory, "_init_wrapped", None) or (factory.__init__ if isinstance(factory, type) else factory)
    try:
        return "num_classes" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
