"""``searchkd bench correlation``: how well proxies rank architectures against ground truth."""

from __future__ import annotations

import inspect
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchkd.errors import SearchKDError
from searchkd.ground_truth import read_ground_truth  # the one reader, re-exported here

__all__ = ["read_ground_truth", "correlation", "rank_stats", "rank_worst"]


def rank_worst(scores: Sequence[float | None]) -> np.ndarray:
    """Ranks of proxy scores, 1 = worst, ties averaged; every non-finite score (NaN, ±inf,
    None) ranks worst, tied with the other non-finite ones.

    This is the one rule for a failed proxy wherever scores are ranked: pass
    ``rank_worst(b)`` as the second argument of :func:`rank_stats` to compare two proxies.
    """
    from scipy.stats import rankdata

    a = np.array([np.nan if v is None else v for v in scores], dtype=float)
    a[~np.isfinite(a)] = -np.inf
    return rankdata(a)


#: up to this many pairs a permutation p-value enumerates every pairing (8! = 40,320)
EXACT_MAX_N = 8
#: seeded random pairings for a p-value above EXACT_MAX_N
RESAMPLES = 9999


def rank_stats(scores: Sequence[float | None], truth: Sequence[float], *, p_values: bool = False,
               seed: int = 0) -> dict[str, float]:
    """Kendall τ-b, Spearman ρ and Pearson r of proxy ``scores`` against ``truth``.

    A non-finite score ranks worst (:func:`rank_worst`); pairs whose ``truth`` is not finite
    (missing) are left out. Pearson r is over values, so it uses only the pairs with a finite
    score. NaN where a statistic is undefined (under 3 pairs, or a constant column).

    With ``p_values``, ``kendall_p`` and ``spearman_p`` come from a two-sided permutation
    test (:func:`scipy.stats.permutation_test`): exact, over every pairing, up to
    :data:`EXACT_MAX_N` pairs; above that, :data:`RESAMPLES` random pairings seeded by ``seed``.
    Asymptotic p-values are poor at the n of a verification (8–16 students).
    """
    from scipy.stats import kendalltau, pearsonr, spearmanr

    x = np.array([np.nan if v is None else v for v in scores], dtype=float)
    y = np.asarray(truth, dtype=float)
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    nan = float("nan")
    out = {"kendall": nan, "spearman": nan, "pearson": nan}
    if p_values:
        out.update(kendall_p=nan, spearman_p=nan)
    rx = rank_worst(x)
    if len(y) < 3 or np.ptp(rx) == 0 or np.ptp(y) == 0:
        return out
    out["kendall"] = float(kendalltau(rx, y).statistic)
    out["spearman"] = float(spearmanr(rx, y).statistic)
    fin = np.isfinite(x)
    if fin.sum() >= 3 and np.ptp(x[fin]) > 0:
        out["pearson"] = float(pearsonr(x[fin], y[fin]).statistic)
    if p_values:
        from scipy.stats import rankdata

        ry = rankdata(y)
        out["kendall_p"] = _permutation_p(_kendall_b, rx, ry, seed)
        out["spearman_p"] = _permutation_p(_pearson, rx, ry, seed)
    return out


def _permutation_p(statistic: Any, x: np.ndarray, y: np.ndarray, seed: int) -> float:
    from scipy.stats import permutation_test

    n = len(x)
    exact = n <= EXACT_MAX_N
    # scipy >= 1.15 names the generator ``rng``; older versions ``random_state``
    key = "rng" if "rng" in inspect.signature(permutation_test).parameters else "random_state"
    # one sample, x, in every order against y fixed: n! pairings (with (x, y) scipy would
    # permute both samples, (n!)² resamples for the same distribution)
    res = permutation_test((x,), lambda a, axis=-1: statistic(a, y, axis), permutation_type="pairings",
                           vectorized=True, n_resamples=math.factorial(n) if exact else RESAMPLES,
                           alternative="two-sided", batch=max(1, 2_000_000 // (n * n)),
                           **{key: np.random.default_rng(seed)})
    return float(res.pvalue)


def _pearson(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    # of ranks: Spearman's rho
    a = np.moveaxis(a, axis, -1)
    a, b = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def _kendall_b(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    # tau-b = sum sign(da)·sign(db) / sqrt(sum sign(da)² · sum sign(db)²) over all pairs
    a = np.moveaxis(a, axis, -1)
    sa = np.sign(a[..., :, None] - a[..., None, :])
    sb = np.sign(b[..., :, None] - b[..., None, :])
    return (sa * sb).sum((-1, -2)) / np.sqrt((sa * sa).sum((-1, -2)) * (sb * sb).sum((-1, -2)))


def correlation(space: str, proxies: list[str], ground_truth: str | Path, column: str, *, sample: int | None = None,
                data: str = "embedded", batch_size: int = 64, teacher: str | None = None, seed: int = 0,
                device: str | None = None, combine: str | None = None, out: str | Path | None = None,
                progress: bool | None = None, dataset: str | None = None) -> dict[str, Any]:
    """Score ``sample`` seeded random archs of the ground truth (all when None) and correlate.

    ``ground_truth``: a CSV, or ``nb201:FILE.pth`` (the official file) for ``dataset`` (see
    :mod:`searchkd.ground_truth`). Writes ``out`` (JSON, the CONTRACT schema), a scatter PNG
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
