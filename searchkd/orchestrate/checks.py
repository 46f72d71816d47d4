"""Checking a search's inputs before anything is written, and undoing a failed start.

A search that fails after writing ``config.json`` would leave a file that blocks the
corrected command ("already holds a search", "cannot resume with a different config"), and
in a sweep (every search resumes) one bad search would poison every rerun. So

* :func:`check_inputs` checks the whole config first: seed, batch size, ``max_params``,
  the teacher's name and weights file, the data (opened, and the batch must fit in it) and
  the device; a local run then also builds its evaluator (teacher, batch, proxy state)
  before writing (see :func:`searchkd.orchestrate.driver.run_search`);
* :func:`undo_failed_start` removes what a failed fresh start created when it logged no trial,
  for the failures only a worker can see (a Ray trial, an architecture's forward pass).
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

from searchkd.errors import SearchKDError
from searchkd.io import check_out_writable

__all__ = ["check_inputs", "check_out_writable", "StartGuard"]


def _non_negative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise SearchKDError(f"{name} must be a non-negative integer, got {value!r}")


def check_inputs(config: Any, space: Any, *, device: bool = True, data: bool = True) -> int | None:
    """Bad input of a search config as one :class:`SearchKDError`, before anything is created.
    Returns the data's class count (the students' head) when it opened image data, else None.

    Args:
        config: a :class:`~searchkd.types.SearchConfig` (defaults filled by ``prepare``).
        space: its space instance.
        device: check ``--device cuda`` against this machine (off for a Ray cluster, whose
            workers may have the GPUs the driver lacks).
        data: open the data (image spaces) and check the batch fits in it.
    """
    _non_negative_int("seed", config.seed)
    if config.proxy_seed is not None:
        _non_negative_int("proxy_seed", config.proxy_seed)
    b = config.batch_size
    if isinstance(b, bool) or not isinstance(b, numbers.Integral) or b <= 0:
        raise SearchKDError(f"batch size must be a positive integer, got {b!r}")
    if config.max_params is not None:
        m = config.max_params
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not math.isfinite(m) or m <= 0:
            raise SearchKDError(f"max_params must be a finite positive number of millions of parameters, got {m!r}")
    if config.teacher_weights is not None:
        w = Path(os.path.expanduser(str(config.teacher_weights)))
        if not w.is_file():
            raise SearchKDError(f"teacher weights file not found: {w}")
        if not os.access(w, os.R_OK):
            raise SearchKDError(f"teacher weights file {w} is not readable (permission denied)")
    if config.teacher is not None:
        from searchkd.teachers import resolve_teacher

        resolve_teacher(config.teacher, space=config.space if isinstance(config.space, str) else None)
    if device and str(config.device).startswith("cuda"):
        from searchkd.devices import resolve_device

        resolve_device(config.device)
    elif config.device not in ("auto", "cpu") and not str(config.device).startswith("cuda"):
        raise SearchKDError(f"unknown device {config.device!r} (auto, cpu, cuda)")
    if data and getattr(space, "modality", "image") == "image":
        from searchkd.data import load_images

        ds = load_images(config.data)
        ds.indices(int(b), seed=0)  # the batch must fit in the data
        return int(ds.num_classes)
    return None





class StartGuard:
    """Removes what a failed fresh start created, when it logged no trial.

    ``with StartGuard(out, fresh):`` — on an exception inside, and only for a fresh start
    (no ``config.json`` before), ``config.json`` and an empty ``trials.jsonl`` are removed, and
    ``out`` itself when this start created it and it is left empty. Anything else in ``out``
    (a logged trial, a checkpoint) is kept, and so is ``config.json`` beside it, so a resume
    still checks it.
    """

    def __init__(self, out: Path, fresh: bool, created: tuple[str, ...] = ("config.json", "trials.jsonl")) -> None:
        self.out = Path(out)
        self.fresh = fresh
        self.created = created
        self.existed = self.out.exists()
        self.before = set(os.listdir(self.out)) if self.existed and self.out.is_dir() else set()

    def __enter__(self) -> "StartGuard":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is not None and self.fresh:
            self.undo()
        return False

    def undo(self) -> None:
        if not self.out.is_dir():
            return
        new = set(os.listdir(self.out)) - self.before
        ours = {n for n in new if n in self.created or n.startswith(".config.json.tmp")}
        log = self.out / "trials.jsonl"
        if "trials.jsonl" in ours and log.stat().st_size > 0:
            return  # trials were logged: keep them, resumable
        if new - ours:  # something else (a checkpoint, a supernet) was written: keep config.json with it
            return
        for n in ours:
            try:
                (self.out / n).unlink()
            except OSError:
                pass
        if not self.existed:
            try:
                self.out.rmdir()  # only when empty
            except OSError:
                pass
