"""Shared plumbing for the benchmark scripts: paths, ground truth, rank statistics, JSON."""

from __future__ import annotations

import csv
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence


ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NB201_CSV = SHARED / "nb201" / "nb201_cifar10.csv"
NASLIB_CSV = SHARED / "nb201" / "naslib_zc_cifar10.csv"
CIFAR1K = SHARED / "images" / "cifar10_test_1000.npz"
OUT = ROOT / "benchmarks" / "out"


def read_csv(path: Path) -> list[dict[str, str]]:
    if not Path(path).is_file():
        sys.exit(f"benchmark: reference data {path} not found (the project's ../shared/data)")
    with open(path) as f:
        return list(csv.DictReader(f))


def ground_truth(path: Path = NB201_CSV, column: str = "cifar10_test_acc") -> dict[str, float]:
    return {r["arch"]: float(r[column]) for r in read_csv(path)}


def rank_stats(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    from searchkd.bench import rank_stats as _rank_stats

    return _rank_stats(x, y)


def machine() -> dict[str, Any]:
    import os

    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
