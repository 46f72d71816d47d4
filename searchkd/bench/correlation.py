"""``searchkd bench correlation``: how well proxies rank architectures against ground truth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from searchkd.errors import SearchKDError
from searchkd.bench.ground_truth import read_ground_truth
from searchkd.bench.stats import rank_stats

__all__ = ["correlation"]


def correlation(space: str, proxies: list[str], ground_truth: str | Path, column: str, *, sample: int | None = None,
                data: str = "embedded", batch_size: int = 64, teacher: str | None = None, seed: int = 0,
                device: str | None = None, combine: str | None = None, out: str | Path | None = None,
                progress: bool | None = None, dataset: str | None = None) -> dict[str, Any]:
    """Score ``sample`` seeded random archs of the ground truth (all when None) and correlate.

    ``ground_truth``: a CSV, or ``nb201:FILE.pth`` (the official file) for ``dataset`` (see
    :mod:`searchkd.bench.ground_truth`). Writes ``out`` (JSON, the CONTRACT schema), a scatter PNG
    and the per-arch scores (``.scores.csv``, with the ground truth and the official
    ``index`` where the source has one) beside it when ``out`` is given.
    """
    from searchkd import api
    from searchkd.io import write_json, write_rows

    gt = read_ground_truth(ground_truth, column, dataset)
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
    if dataset is not None:
        result["dataset"] = dataset
    for p in cols:
        stats = rank_stats([r[p] for r in rows], truth)
        # a proxy's own time per arch; the rank's is the whole scoring (building included)
        stats["seconds_per_arch"] = (elapsed if p == "rank" else timings.get(p, 0.0)) / len(rows)
        stats["nonfinite"] = int(sum(not np.isfinite(r[p]) for r in rows))
        result["proxies"]["rank(" + ",".join(proxies) + ")" if p == "rank" else p] = stats
    if out is not None:
        write_json(out, result)
        index = ({"index": gt.index.get(r["arch"], "")} if gt.index else {} for r in rows)
        write_rows(Path(out).with_suffix(".scores.csv"), [{**ix, **r, column: t} for ix, r, t in zip(index, rows, truth)])
        _scatter(Path(out).with_suffix(".png"), rows, truth, cols, column)
    return result


def _scatter(path: Path, rows: list[dict[str, Any]], truth: list[float], cols: list[str], column: str) -> None:
    """One panel per proxy: score vs ground truth. A proxy whose finite values span three
    decades or more (synflow: 1e10 … 1e49) gets a log x axis when they are all positive, else
    its ranks (1 = lowest), so the points do not collapse onto x ≈ 0."""
    from scipy.stats import rankdata

    from searchkd.orchestrate.plots import agg_figure

    def axis(x: np.ndarray) -> tuple[np.ndarray, str]:
        if x.size < 2:
            return x, "linear"
        if (x > 0).all():
            return x, "log" if x.max() / x.min() >= 1e3 else "linear"
        mag = np.abs(x[x != 0])
        if mag.size and mag.max() / mag.min() >= 1e3:  # zeros or negatives: no log axis, ranks instead
            return rankdata(x), "rank"
        return x, "linear"

    fig = agg_figure(figsize=(3.6 * len(cols), 3.4))
    axes = fig.subplots(1, len(cols), squeeze=False)
    for ax, p in zip(axes[0], cols):
        x = np.array([r[p] for r in rows], float)
        ok = np.isfinite(x)  # the non-finite scores rank worst in ρ but have no place on the x axis
        xs, kind = axis(x[ok])
        ax.scatter(xs, np.asarray(truth)[ok], s=6, alpha=0.6)
        rho = rank_stats(x, truth)["spearman"]
        nonfinite = f", {int((~ok).sum())} non-finite" if (~ok).any() else ""
        ax.set_title(f"{p}  ρ={rho:.3f}{nonfinite}", fontsize=9)
        if kind == "log":
            ax.set_xscale("log")
            ax.set_xlabel(f"{p} (log scale)")
        else:
            ax.set_xlabel(f"rank of {p} (values span decades)" if kind == "rank" else p)
        ax.set_ylabel(column)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
