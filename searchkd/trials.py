"""The files of a search directory: ``trials.jsonl`` (append-only, fsynced) and ``config.json``.

``trials.jsonl`` holds one trial record per line and nothing else, so any reader can treat
every line as a trial. The config that produced it lives beside it in ``config.json``,
which is what a resume is checked against.

Scores are strict JSON: a non-finite score (a failed proxy) is written ``null`` and read
back as ``-inf``, which ranks worst (logs of older versions, holding ``"-inf"``, read too).

Crash safety: a batch of records is written with one ``write`` and then ``fsync``ed, so a
kill loses at most the batch in flight, and at worst leaves a torn last line. On reading,
a torn *last* line is dropped (and cut from the file before anything is appended); a bad
line anywhere else means the file was damaged or edited, and is refused.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from searchkd.errors import SearchKDError
from searchkd.io import append_jsonl, read_json, write_json
from searchkd.types import Trial

__all__ = ["TRIALS", "CONFIG", "RESULT", "read_trials", "append_trials", "write_json", "read_json", "cut_torn_tail"]

TRIALS, CONFIG, RESULT = "trials.jsonl", "config.json", "result.json"


def read_trials(path: str | os.PathLike[str], *, unique: bool = True) -> tuple[list[Trial], int]:
    """The trials of a log and the byte length of its intact part.

    ``unique`` False: an arch may come back (a supernet search logs its derived cell once per epoch).

    Raises:
        SearchKDError: a line other than the last is not a trial record, the ``i`` are not
            0, 1, 2 … in order, or (``unique``) an arch appears twice.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    trials: list[Trial] = []
    seen: set[str] = set()
    good = 0
    lines = data.split(b"\n")
    for n, raw in enumerate(lines):
        is_last = n == len(lines) - 1 or (n == len(lines) - 2 and lines[-1] == b"")
        if n == len(lines) - 1 and raw == b"":
            break
        try:
            t = _trial(json.loads(raw.decode("utf-8")))
            if not raw.endswith(b"}"):
                raise ValueError("unterminated line")
        except (ValueError, SearchKDError) as e:
            if is_last:  # a write cut short by a kill: drop it
                break
            raise SearchKDError(f"corrupt {path}: line {n + 1} is not a trial record ({str(e)[:120]}); "
                                "repair or remove the file, or search into a new directory") from None
        if t.i != len(trials) or (unique and t.arch in seen):
            raise SearchKDError(f"corrupt {path}: line {n + 1} has i={t.i} arch {t.arch!r}, expected i={len(trials)} "
                                "and each arch once; search into a new directory")
        if n == len(lines) - 1:  # a complete record without its newline: keep it, mend the newline later
            trials.append(t)
            good = len(data)
            break
        trials.append(t)
        seen.add(t.arch)
        good += len(raw) + 1
    return trials, good


def cut_torn_tail(path: str | os.PathLike[str], good: int) -> None:
    """Cut a torn last line off (and end a complete last line with its newline)."""
    path = Path(path)
    if not path.exists():
        return
    size = path.stat().st_size
    if size > good:
        os.truncate(path, good)
    if good > 0:
        with open(path, "rb+") as f:
            f.seek(good - 1)
            if f.read(1) != b"\n":
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())


def append_trials(path: str | os.PathLike[str], trials: Iterable[Trial]) -> None:
    """Append records as one write, flushed and fsynced before returning."""
    append_jsonl(path, ({**t.to_dict(), "scores": dict(t.scores)} for t in trials))  # -inf → null


def _trial(d: Any) -> Trial:
    if isinstance(d, dict) and isinstance(d.get("scores"), dict):
        d = {**d, "scores": {k: -math.inf if v is None else v for k, v in d["scores"].items()}}
    return Trial.from_dict(d)
