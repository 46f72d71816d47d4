"""The verdict: τ/ρ on a fixed table against known values; pick vs controls; the plot."""

from __future__ import annotations

import pytest

from searchkd.distill.report import plot_verify, rank_correlations, verdict


def test_tau_and_rho_on_a_fixed_table() -> None:
    # one discordant pair of ten: τ = (9 − 1)/10; rank differences (0,1,1,0,0): ρ = 1 − 6·2/(5·24)
    c = rank_correlations([1, 2, 3, 4, 5], [10, 30, 20, 40, 50])
    assert c["n"] == 5
    assert c["kendall_tau"] == pytest.approx(0.8)
    assert c["spearman_rho"] == pytest.approx(0.9)
    rev = rank_correlations([1, 2, 3, 4], [4, 3, 2, 1])
    assert rev["kendall_tau"] == pytest.approx(-1.0) and rev["spearman_rho"] == pytest.approx(-1.0)


def test_correlations_are_undefined_not_nan_for_constant_or_tiny_tables() -> None:
    assert rank_correlations([1, 2, 3], [5, 5, 5])["kendall_tau"] is None
    assert rank_correlations([1, 2], [1, 2])["spearman_rho"] is None


def _rows() -> list[dict]:
    return [
        {"arch": "a", "role": "top", "score": 5.0, "kd_accuracy": 80.0, "vanilla_accuracy": 78.0},
        {"arch": "b", "role": "top", "score": 4.0, "kd_accuracy": 70.0, "vanilla_accuracy": 69.0},
        {"arch": "c", "role": "control", "score": 1.0, "kd_accuracy": 60.0, "vanilla_accuracy": 61.0},
        {"arch": "d", "role": "control", "score": 2.0, "kd_accuracy": 85.0, "vanilla_accuracy": 80.0},
        {"arch": "e", "role": "control", "score": None, "kd_accuracy": 50.0},
    ]


def test_pick_against_controls() -> None:
    v = verdict(_rows())
    assert v["pick"] == "a" and v["pick_kd_accuracy"] == 80.0
    assert v["controls_mean_kd_accuracy"] == pytest.approx(65.0)
    assert v["controls_best_kd_accuracy"] == 85.0
    assert v["pick_beats_controls_mean"] is True and v["pick_beats_controls_best"] is False
    assert v["pick_rank_by_kd_accuracy"] == 2
    assert v["proxy_vs_kd"]["n"] == 4  # the unscored student is left out
    assert v["proxy_vs_kd"]["kendall_tau"] == pytest.approx(1 / 3)
    assert v["mean_kd_gain"] == pytest.approx((2 + 1 - 1 + 5) / 4)
    no_controls = verdict([r for r in _rows() if r["role"] == "top"])
    assert no_controls["pick_beats_controls_mean"] is None


def test_plot_writes_a_png(tmp_path) -> None:
    rows = _rows()
    report = {"students": rows, "teacher": {"accuracy": 90.0}, "config": {"proxy": "diswot"}, "verdict": verdict(rows)}
    assert plot_verify(report, tmp_path / "v.png")
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"
