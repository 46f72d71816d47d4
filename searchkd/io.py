"""Writing and reading results: strict JSON, written atomically or appended in one fsynced write.

JSON never holds ``NaN``/``Infinity`` (CONTRACT): every writer here turns a non-finite
number into ``null``, which readers rank worst. A reader never sees a half-written file.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from searchkd.errors import SearchKDError

__all__ = ["strict", "dumps", "write_json", "append_jsonl", "read_json", "write_rows", "atomic_path", "agg_figure",
           "check_out_writable"]


def strict(obj: Any) -> Any:
    """``obj`` as strict JSON can hold it: non-finite floats (NaN, ±inf) → None, numpy
    scalars and arrays → Python numbers and lists, tuples → lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "tolist") and type(obj).__module__ == "numpy":  # np.float32(…), np.ndarray
        return strict(obj.tolist())
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of :func:`strict` ``(obj)``: never ``NaN``/``Infinity``."""
    return json.dumps(strict(obj), allow_nan=False, **kwargs)


def atomic_path(path: str | Path) -> Path:
    """A temporary sibling of ``path``; ``os.replace`` it onto ``path`` when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, allow_nan: bool = False) -> None:
    """Write strict JSON atomically: temp file, fsync, rename; non-finite numbers become null.

    ``allow_nan`` is accepted so that older callers keep working; it changes nothing (the
    output is always strict JSON).
    """
    tmp = atomic_path(path)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(obj, indent=indent) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    """Append one strict-JSON line per row as one write, flushed and fsynced before returning
    (a kill loses at most this write, and leaves at worst a torn last line)."""
    text = "".join(dumps(r) + "\n" for r in rows)
    if not text:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read_json(path: str | os.PathLike[str]) -> Any:
    """A JSON file's content; an unreadable or malformed file is a :class:`SearchKDError`."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise SearchKDError(f"cannot read {path}: {e}") from None


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """``.csv`` (columns from the first row) or ``.jsonl`` (strict JSON), chosen by suffix."""
    path = Path(path)
    tmp = atomic_path(path)
    if path.suffix == ".jsonl":
        tmp.write_text("".join(dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["arch"])
            w.writeheader()
            w.writerows(rows)
    os.replace(tmp, path)


def agg_figure(**kwargs: Any) -> Any:
    """A :class:`~matplotlib.figure.Figure` (``kwargs``: figsize, dpi …) drawn by its own Agg
    canvas, for ``fig.savefig``; nothing global (pyplot's figure list, the backend) changes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def check_out_writable(path: str | Path, *, directory: bool) -> None:
    """A one-line :class:`SearchKDError` when ``path`` (a directory to create or a file to
    write) cannot be written: under a file, on a read-only file system, without permission.
    Nothing is left behind."""
    p = Path(os.path.expanduser(str(path))).absolute()
    target = p if directory else p.parent
    probe = target
    while not probe.exists():  # the nearest existing ancestor decides
        probe = probe.parent
    what = "--out"
    if not probe.is_dir():
        raise SearchKDError(f"{what} {path}: {probe} is a file, not a directory")
    if directory and p.exists() and not p.is_dir():
        raise SearchKDError(f"{what} {path} exists and is not a directory")
    if not directory and p.is_dir():
        raise SearchKDError(f"{what} {path} is a directory, not a file")
    if str(probe).startswith("/proc") or str(probe).startswith("/sys"):
        raise SearchKDError(f"{what} {path}: cannot write under {probe}")
    # os.access misses read-only mounts for root; a real probe file tells
    try:
        fd_path = probe / f".searchkd-write-test-{os.getpid()}"
        with open(fd_path, "w"):
            pass
        os.unlink(fd_path)
    except OSError as e:
        raise SearchKDError(f"{what} {path}: cannot write in {probe} ({e.strerror or type(e).__name__})") from None
