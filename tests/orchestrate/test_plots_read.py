"""Figures a person reads (issue 14, item 9): axes that do not collapse, titles, labels that do not overlap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from searchkd.orchestrate import plots


@pytest.fixture
def figures(monkeypatch) -> list:
    """Every figure searchkd draws in the test, kept for inspection."""
    made: list = []
    real = plots.agg_figure

    def keep(**kw):
        made.append(real(**kw))
        return made[-1]

    import searchkd.io

    monkeypatch.setattr(plots, "agg_figure", keep)  # plots.py holds its own reference
    monkeypatch.setattr(searchkd.io, "agg_figure", keep)  # every other plot imports it when it draws
    return made


def test_scatter_axes_follow_the_spread_of_the_values(tmp_path, figures) -> None:
    from searchkd.orchestrate.plots import plot_correlation as _scatter

    rng = np.random.default_rng(0)
    acc = list(rng.uniform(80, 94, 40))
    rows = [{"synflow": 10.0 ** rng.uniform(10, 49), "grasp": float(rng.choice([-1, 1]) * 10.0 ** rng.uniform(-3, 3)),
             "nwot": float(rng.uniform(700, 900))} for _ in acc]
    rows[0]["synflow"] = float("-inf")
    _scatter(tmp_path / "s.png", rows, acc, ["synflow", "grasp", "nwot"], "acc")
    syn, grasp, nwot = figures[0].axes
    assert syn.get_xscale() == "log" and "log" in syn.get_xlabel()  # 1e10 … 1e49, all positive
    assert grasp.get_xscale() == "linear" and grasp.get_xlabel().startswith("rank of grasp")  # both signs
    assert sorted(grasp.collections[0].get_offsets()[:, 0]) == list(range(1, 41))
    assert nwot.get_xscale() == "linear" and nwot.get_xlabel() == "nwot"  # within a decade: as it is
    assert (tmp_path / "s.png").stat().st_size > 0


def test_trajectory_has_a_title(tmp_path, figures) -> None:
    from searchkd.orchestrate.objective import Objectives
    from searchkd.types import SearchResult, Trial

    trials = [Trial(i, f"a{i}", {"p": float(i)}, 1.0 + i, 2.0) for i in range(4)]
    result = SearchResult({"strategy": "random", "space": "toy"}, trials[-1], trials, 4, 0.0, history=trials)
    paths = plots.plot_search(result, Objectives(("proxy",), ("p",)), tmp_path)
    assert [p.name for p in paths] == ["pareto.png", "trajectory.png"]
    assert figures[1].axes[0].get_title() == "random on toy: best so far over 4 evaluations"


def test_verify_labels_do_not_overlap(tmp_path, figures) -> None:
    from searchkd.distill.report import plot_verify, verdict

    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|{}~2|"
    ops = ["nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "none", "nor_conv_3x3", "skip_connect", "none"]
    students = [{"arch": cell.format(op) + ("" if k < 5 else f"#{k}"), "role": "top" if k < 4 else "control",
                 "score": 0.5 + 0.002 * k if k < 4 else 0.3 + 0.002 * k, "kd_accuracy": 61 + 0.05 * (k % 3),
                 "vanilla_accuracy": 60.0} for k, op in enumerate(ops)]  # clustered: the old labels piled up
    report = {"students": students, "teacher": {"accuracy": 62.0}, "config": {"proxy": "diswot"},
              "verdict": verdict(students)}
    assert plot_verify(report, tmp_path / "v.png")
    fig = figures[0]
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    numbers = [t for t in ax.texts]
    assert sorted(int(t.get_text()) for t in numbers) == list(range(1, 9))
    boxes = [t.get_window_extent(renderer) for t in numbers]
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    # the key under the axes names every arch in full, and sits below the axes' labels
    key = fig.texts[0]
    assert all(s["arch"] in key.get_text() for s in students)
    assert key.get_window_extent(renderer).y1 < ax.get_tightbbox(renderer).y0
