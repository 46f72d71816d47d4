"""benchmarks/kd_ranking.py's own logic: the cross-validated fit, the budgeted pick, the NB201 fit."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import kd_ranking  # noqa: E402


def _students(n=24, seed=0):
    rng = np.random.default_rng(seed)
    params, flops = rng.uniform(0.05, 1.0, n), rng.uniform(10, 100, n)
    scores = {"params": list(params), "flops": list(flops), "diswot": list(-rng.uniform(0.01, 0.1, n))}
    for z in kd_ranking.ZC_CANDIDATES:
        scores[z] = list(rng.uniform(1, 10, n))  # noise: carries nothing about the truth
    return scores, params, flops


def test_cv_fit_recovers_a_planted_flops_weight_and_beats_size_on_held_out_folds():
    scores, params, flops = _students()
    truth = list(np.log(params) + 0.4 * np.log(flops))  # the planted model, no noise
    r = kd_ranking.cv_fit({0: scores, 1: scores}, truth, repeats=3, folds=3)
    assert r["fit_all"]["w_flops"] == pytest.approx(0.4) and r["fit_all"]["kendall_in_sample"] == pytest.approx(1.0)
    assert r["fit_all"]["w_zc"] == 0.0 and r["fit_all"]["w_diswot"] == 0.0
    assert r["held_out_kendall"] > r["held_out_kendall_params"]
    assert r["held_out_folds"] == 9


def test_cv_fit_falls_back_to_size_when_only_size_matters():
    scores, params, _ = _students(seed=1)
    r = kd_ranking.cv_fit({0: scores}, list(np.log(params)), repeats=2, folds=2)
    assert (r["fit_all"]["w_zc"], r["fit_all"]["w_diswot"], r["fit_all"]["w_flops"]) == (0.0, 0.0, 0.0)
    assert r["held_out_kendall"] == pytest.approx(r["held_out_kendall_params"])


def test_budgeted_regret_by_hand():
    kd = [70.0, 72.0, 71.0, 75.0]
    params = [0.1, 0.2, 0.3, 0.9]
    r = kd_ranking.budgeted_regret([4.0, 1.0, 2.0, 9.0], kd, params, budget=0.3)
    assert r == {"pick_kd_acc": 70.0, "best_kd_acc": 72.0, "regret": 2.0, "n_within": 3}
    # a failed (None / non-finite) score is never picked
    assert kd_ranking.budgeted_regret([None, 1.0, math.nan, 9.0], kd, params, 0.3)["pick_kd_acc"] == 72.0


def test_fit_nb201_picks_the_planted_proxy(tmp_path):
    rng = np.random.default_rng(2)
    n = 40
    params, zico = rng.uniform(0.1, 1.5, n), rng.uniform(50, 500, n)
    acc = np.log(params) + 1.0 * np.log(zico)
    path = tmp_path / "s.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "params", "diswot", *kd_ranking.ZC_CANDIDATES, "cifar10_test_acc"])
        for i in range(n):
            others = rng.uniform(1, 10, len(kd_ranking.ZC_CANDIDATES) - 1)
            w.writerow([f"a{i}", params[i], -rng.uniform(0.01, 0.1), *others, zico[i], acc[i]])
    r = kd_ranking.fit_nb201(path)
    assert r["chosen"]["zc"] == "zico" and r["candidates"]["zico"]["kendall"] == pytest.approx(1.0)
    assert r["chosen"]["w_zc"] == pytest.approx(1.0) and r["chosen"]["w_diswot"] == 0.0


def test_noise_floor_recovers_a_planted_run_noise():
    """Truth = a smooth size model + a per-arch effect shared by the KD and the alone run +
    independent run noise σ: the estimate comes back near σ, and the budget rows agree with
    the largest-within-budget pick and the best by hand."""
    rng = np.random.default_rng(0)
    n, sigma = 400, 0.25
    params, flops = rng.uniform(0.05, 1.0, n), rng.uniform(10, 100, n)
    base = 70 + 3 * np.log(params) + 0.5 * np.log(flops)
    arch = rng.normal(0, 0.2, n)
    kd = base + arch + rng.normal(0, sigma, n)
    van = base - 1.5 + arch + rng.normal(0, sigma, n)
    archs = [f"a{i}" for i in range(n)]
    budgets = {"p50": float(np.median(params))}
    r = kd_ranking.noise_floor(archs, list(kd), list(van), list(params), list(flops), budgets)
    assert r["run_noise_sd"] == pytest.approx(sigma, rel=0.15)
    # arch share 0.04 / (0.04 + 0.0625) = 0.39
    assert r["residual_corr_kd_vanilla"] == pytest.approx(0.04 / 0.1025, abs=0.1)
    b = r["budgets"]["p50"]
    inside = [i for i in range(n) if params[i] <= budgets["p50"]]
    assert b["n_within"] == len(inside) == n // 2
    assert b["best"] == archs[max(inside, key=lambda i: kd[i])]
    assert b["params_pick"] == archs[max(inside, key=lambda i: params[i])]
    assert b["params_regret"] == pytest.approx(max(kd[i] for i in inside) - kd[max(inside, key=lambda i: params[i])])
    assert b["best"] in b["indistinguishable_from_best"]
