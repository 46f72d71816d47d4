"""Rank statistics (searchkd.bench): non-finite scores rank worst, exact permutation p-values,
one ground-truth reader; each checked against a hand computation or a brute-force loop."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from searchkd.bench import rank_stats, rank_worst, read_ground_truth
from searchkd.distill.report import rank_correlations

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
INF, NAN = math.inf, math.nan


def test_non_finite_scores_rank_worst_with_ties_averaged() -> None:
    # finite 1 < 2 < 3 take ranks 4, 5, 6; NaN, None, +inf share ranks 1–3: (1+2+3)/3 = 2
    assert rank_worst([3, NAN, None, 1, INF, 2]).tolist() == [6, 2, 2, 4, 2, 5]


def test_rank_stats_places_a_failed_proxy_last_instead_of_dropping_it() -> None:
    # ranks of scores (-inf worst): 1 2 3 4; of truth: 4 1 2 3.
    # ρ = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·(9+1+1+1)/60 = −0.2;  τ: 3 concordant, 3 discordant → 0.
    # Dropping the -inf pair (the old rule) would give ρ = τ = 1. Pearson uses the finite pairs.
    s = rank_stats([-INF, 2, 3, 4], [4, 1, 2, 3])
    assert s["spearman"] == pytest.approx(-0.2)
    assert s["kendall"] == pytest.approx(0.0)
    assert s["pearson"] == pytest.approx(1.0)
    # a missing ground truth drops the pair; a constant or tiny table is undefined
    assert rank_stats([1, 2, 3, 4], [1, 2, NAN, 3])["spearman"] == pytest.approx(1.0)
    assert math.isnan(rank_stats([NAN, -INF, INF], [1, 2, 3])["spearman"])
    assert math.isnan(rank_stats([1, 2], [1, 2])["kendall"])


def test_zc_fidelity_ranks_non_finite_scores_like_bench() -> None:
    from benchmarks import zc_fidelity

    rows = [{"arch": a, "val_accuracy": str(v), "synflow": p}
            for a, v, p in zip("abcd", [4, 1, 2, 3], ["1", "2", "3", "-inf"])]
    done = {a: {"scores": {"synflow": s}, "ms": {"synflow": 1.0}} for a, s in zip("abcd", [None, 2.0, 3.0, 4.0])}
    t = zc_fidelity.summarise(rows, done, ["synflow"], {"a": 4, "b": 1, "c": 2, "d": 3})["table"]["synflow"]
    assert t["rho_val"] == pytest.approx(-0.2) and t["nonfinite"] == 1  # the stored null ranks worst
    # the published column's -inf ranks worst too: published ranks 2 3 4 1 vs ours 1 2 3 4
    assert t["rho_vs_published"] == pytest.approx(rank_stats([1, 2, 3, 4], [2, 3, 4, 1])["spearman"])


def _brute_p(stat, x, y) -> float:
    """Two-sided p by enumerating every pairing: P(|T| ≥ |t|) (null symmetric here)."""
    t = stat(x, y)
    null = [stat(x, np.array(p)) for p in itertools.permutations(y)]
    return float(np.mean([abs(v) >= abs(t) - 1e-12 for v in null]))


def test_permutation_p_values_are_exact_for_a_tiny_table() -> None:
    # n = 4, x = 1 2 3 4, y = 2 1 4 3: ρ = 1 − 6·4/60 = 0.6, τ = (4 − 2)/6 = 1/3.
    # Σd² over the 24 orders (0:1 2:3 4:1 6:4 8:2 10:2 12:2 14:4 16:1 18:3 20:1): |ρ| ≥ 0.6 ⇔
    # Σd² ≤ 4 or ≥ 16: 10 orders → p = 10/24. Inversions (Mahonian 1 3 5 6 5 3 1): |τ| ≥ 1/3
    # ⇔ ≤ 2 or ≥ 4 inversions: 18 orders → p = 18/24. (spearmanr's t approximation gives 0.40.)
    s = rank_stats([1, 2, 3, 4], [2, 1, 4, 3], p_values=True)
    assert s["spearman_p"] == pytest.approx(10 / 24)
    assert s["kendall_p"] == pytest.approx(18 / 24)
    c = rank_correlations([1, 2, 3, 4], [2, 1, 4, 3])
    assert c["spearman_p"] == pytest.approx(10 / 24) and c["kendall_p"] == pytest.approx(18 / 24)


def test_permutation_p_values_match_brute_force_with_ties() -> None:
    from scipy.stats import kendalltau, spearmanr

    x, y = np.array([1.0, 2, 2, 3, 5, 4]), np.array([2.0, 1, 3, 3, 6, 4])
    s = rank_stats(x, y, p_values=True)
    assert s["spearman_p"] == pytest.approx(_brute_p(lambda a, b: spearmanr(a, b).statistic, x, y))
    assert s["kendall_p"] == pytest.approx(_brute_p(lambda a, b: kendalltau(a, b).statistic, x, y))


def test_p_values_above_the_exact_size_are_seeded_resamples() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=12), rng.normal(size=12)
    a, b = rank_stats(x, y, p_values=True, seed=1), rank_stats(x, y, p_values=True, seed=1)
    assert a == b and 0 < a["spearman_p"] <= 1
    assert rank_correlations([1, 2, 3], [5, 5, 5])["spearman_p"] is None


def test_one_ground_truth_reader(tmp_path) -> None:
    from benchmarks import _common, search_quality, zc_fidelity
    from searchkd.errors import SearchKDError
    from searchkd.orchestrate import sweep

    assert sweep.read_ground_truth is search_quality.read_ground_truth is read_ground_truth
    assert _common.read_ground_truth is zc_fidelity.ground_truth.__globals__["read_ground_truth"]
    f = tmp_path / "gt.csv"
    f.write_text("arch,acc\na,1.5\nb,2\n")
    assert _common.ground_truth(f, "acc") == {"a": 1.5, "b": 2.0}
    f.write_text("arch,acc\na,x\n")
    with pytest.raises(SearchKDError, match="not a number"):
        read_ground_truth(f, "acc")
