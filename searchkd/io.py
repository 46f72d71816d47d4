"""Writing results atomically: a reader never sees a half-written file."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Sequence

__all__ = ["write_json", "write_rows", "atomic_path"]


def atomic_path(path: str | Path) -> Path:
    """A temporary sibling of ``path``; ``os.replace`` it onto ``path`` when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_json(path: str | Path, obj: Any, *, allow_nan: bool = True) -> None:
    """Write JSON atomically: temp file, fsync, rename (``allow_nan=False``: strict JSON or an error)."""
    tmp = atomic_path(path)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=allow_nan)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """``.csv`` (columns from the first row) or ``.jsonl``, chosen by suffix."""
    path = Path(path)
    tmp = atomic_path(path)
    if path.suffix == ".jsonl":
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["arch"])
            w.writeheader()
            w.writerows(rows)
    os.replace(tmp, path)
