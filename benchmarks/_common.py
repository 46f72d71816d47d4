"""Shared plumbing for the benchmark scripts: paths, and searchkd's ground-truth reader, rank
statistics and JSON writer with the scripts' defaults."""

from __future__ import annotations

import csv
import platform
import sys
import time
from pathlib import Path
from typing import Any

from searchkd.bench import rank_stats, read_ground_truth
from searchkd.io import write_json as _write_json

__all__ = ["ROOT", "SHARED", "NB201_CSV", "NASLIB_CSV", "CIFAR1K", "OUT", "RUNS", "read_csv", "ground_truth", "rank_stats",
           "machine", "write_json"]


ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NB201_CSV = SHARED / "nb201" / "nb201_cifar10.csv"
NASLIB_CSV = SHARED / "nb201" / "naslib_zc_cifar10.csv"
CIFAR1K = SHARED / "images" / "cifar10_test_1000.npz"
OUT = ROOT / "benchmarks" / "out"  # the committed figures: written only when --out names it
RUNS = ROOT / "runs"  # every script's default --out (ignored by git): a trial run never overwrites a figure


def read_csv(path: Path) -> list[dict[str, str]]:
    if not Path(path).is_file():
        sys.exit(f"benchmark: reference data {path} not found (the project's ../shared/data)")
    with open(path) as f:
        return list(csv.DictReader(f))


def ground_truth(path: Path = NB201_CSV, column: str = "cifar10_test_acc") -> dict[str, float]:
    """:func:`searchkd.bench.read_ground_truth` (the one reader), defaulting to NB201 CIFAR-10."""
    if not Path(path).is_file():
        sys.exit(f"benchmark: reference data {path} not found (the project's ../shared/data)")
    return read_ground_truth(path, column)


def machine() -> dict[str, Any]:
    import os

    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_json(path: Path, obj: Any) -> None:
    """:func:`searchkd.io.write_json` (atomic, strict: non-finite → null), and say so."""
    _write_json(path, obj)
    print(f"wrote {path}")
