"""Rank statistics of scores against ground truth: τ-b, ρ and r with permutation p-values,
and the one rule for a failed (non-finite) score. Used by ``bench correlation``, distill
verification and the benchmark scripts; imports nothing of searchkd's."""

from __future__ import annotations

import inspect
import math
from typing import Any, Sequence

import numpy as np

__all__ = ["rank_stats", "rank_worst", "EXACT_MAX_N", "RESAMPLES"]


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
