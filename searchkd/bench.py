"""``searchkd bench correlation``: how well proxies rank architectures against ground truth."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchkd.errors import SearchKDError

__all__ = ["read_ground_truth", "correlation", "rank_stats"]


def read_ground_truth(path: str | Path, column: str) -> dict[str, float]:
    """``arch`` → value of ``column`` from a CSV with an ``arch`` column."""
    path = Path(path)
    if not path.is_file():
        raise SearchKDError(f"ground-truth file not found: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "arch" not in cols or column not in cols:
            raise SearchKDError(f"{path} needs columns 'arch' and {column!r}; it has {', '.join(cols) or 'none'}")
        out = {}
        for i, row in enumerate(reader, start=2):
            try:
                out[row["arch"]] = float(row[column])
            except (TypeError, ValueError):
                raise SearchKDError(f"{path}:{i}: {column}={row[column]!r} is not a number") from None
    if not out:
        raise SearchKDError(f"{path} has no rows")
    return out


def rank_stats(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Kendall τ, Spearman ρ and Pearson r over the pairs where both values are finite."""
    from scipy.stats import kendalltau, pearsonr, spearmanr

    xa, ya = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    if len(xa) < 3 or np.ptp(xa) == 0:
        return {"kendall": float("nan"), "spearman": float("nan"), "pearson": float("nan")}
    return {"kendall": float(kendalltau(xa, ya)[0]), "spearman": float(spearmanr(xa, ya)[0]),
            "pearson": float(pearsonr(xa, ya)[0])}


def correlation(space: str, proxies: list[str], ground_truth: str | Path, column: str, *, sample: int | None = None,
                data: str = "embedded", batch_size: int = 64, teacher: str | None = None, seed: int = 0,
                device: str | None = None, combine: str | None = None, out: str | Path | None = None,
                progress: bool | None = None) -> dict[str, Any]:
    """Score ``sample`` seeded random archs of the ground truth (all when None) and correlate.

    Writes ``out`` (JSON, the CONTRACT schema), a scatter PNG and the per-arch scores
    (``.scores.csv``, with the ground truth) beside it when ``out`` is given.
    """
    from searchkd import api
    from searchkd.io import write_json, write_rows

    gt = read_ground_truth(ground_truth, column)
    sp = api.get_space(space)
    archs = sorted(gt)
    for a in archs[:5]:
        sp.validate(a)
    if sample is not None:
        if sample <= 0:
            raise SearchKDError(f"--sample must be positive, got {sample}")
        rng = np.random.default_rng(seed)
        archs = [archs[i] for i in sorted(rng.choice(len(archs), size=min(sample, len(archs)), replace=False))]
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    rows = api.score_archs(space, archs, proxies, teacher=teacher, data=data, batch_size=batch_size, seed=seed,
                           device=device, combine=combine, progress=progress, timings=timings)
    elapsed = time.perf_counter() - t0
    truth = [gt[r["arch"]] for r in rows]
    cols = list(proxies) + (["rank"] if combine == "rank" else [])
    result: dict[str, Any] = {"space": space, "column": column, "n": len(rows), "data": data,
                              "batch_size": batch_size, "seed": seed, "proxies": {}}
    for p in cols:
        stats = rank_stats([r[p] for r in rows], truth)
        # a proxy's own time per arch; the rank's is the whole scoring (building included)
        stats["seconds_per_arch"] = (elapsed if p == "rank" else timings.get(p, 0.0)) / len(rows)
        stats["nonfinite"] = int(sum(not np.isfinite(r[p]) for r in rows))
        result["proxies"]["rank(" + ",".join(proxies) + ")" if p == "rank" else p] = stats
    if out is not None:
        write_json(out, result)
        write_rows(Path(out).with_suffix(".scores.csv"), [{**r, column: t} for r, t in zip(rows, truth)])
        _scatter(Path(out).with_suffix(".png"), rows, truth, cols, column)
    return result


def _scatter(path: Path, rows: list[dict[str, Any]], truth: list[float], cols: list[str], column: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 3.4), squeeze=False)
    for ax, p in zip(axes[0], cols):
        x = np.array([r[p] for r in rows], float)
        ok = np.isfinite(x)
        ax.scatter(x[ok], np.asarray(truth)[ok], s=6, alpha=0.6)
        rho = rank_stats(x, truth)["spearman"]
        ax.set_title(f"{p}  ρ={rho:.3f}", fontsize=9)
        ax.set_xlabel(p)
        ax.set_ylabel(column)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
