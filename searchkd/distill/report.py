"""The verdict of a verification (rank correlations, the pick vs the controls) and its plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

__all__ = ["verdict", "rank_correlations", "plot_verify"]


def _clean(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def rank_correlations(x: Sequence[float | None], y: Sequence[float], *, seed: int = 0) -> dict[str, float | None]:
    """Kendall τ (τ-b) and Spearman ρ of scores ``x`` against accuracies ``y``, with two-sided
    permutation p-values (exact up to 8 pairs, else seeded resampling; see
    :func:`searchkd.bench.stats.rank_stats`, which computes them). A non-finite score ranks worst.
    None where undefined (under 3 pairs, or a constant column)."""
    from searchkd.bench.stats import rank_stats

    s = rank_stats(x, y, p_values=True, seed=seed)
    return {"n": len(x), "kendall_tau": _clean(s["kendall"]), "kendall_p": _clean(s["kendall_p"]),
            "spearman_rho": _clean(s["spearman"]), "spearman_p": _clean(s["spearman_p"])}


def _mean(v: Sequence[float]) -> float | None:
    return sum(v) / len(v) if v else None


def verdict(students: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """From the per-student rows of ``verify.json``: how well the proxy ranked KD accuracy
    and whether its pick beat the random controls.

    The pick is the ``top`` student ranked first by the proxy. ``pick_beats_controls_mean``
    / ``_best`` compare its KD accuracy with the mean / the best of the controls' (None
    without controls). Correlations use every trained student that has a finite score.
    """
    scored = [s for s in students if s.get("score") is not None and s.get("kd_accuracy") is not None]
    out: dict[str, Any] = {"proxy_vs_kd": rank_correlations([s["score"] for s in scored],
                                                             [s["kd_accuracy"] for s in scored])}
    with_vanilla = [s for s in scored if s.get("vanilla_accuracy") is not None]
    if with_vanilla:
        out["proxy_vs_vanilla"] = rank_correlations([s["score"] for s in with_vanilla],
                                                    [s["vanilla_accuracy"] for s in with_vanilla])
        gains = [s["kd_accuracy"] - s["vanilla_accuracy"] for s in with_vanilla]
        out["mean_kd_gain"] = _mean(gains)
    tops = [s for s in students if s["role"] == "top" and s.get("kd_accuracy") is not None]
    controls = [s["kd_accuracy"] for s in students if s["role"] == "control" and s.get("kd_accuracy") is not None]
    pick = tops[0] if tops else None
    trained = sorted((s["kd_accuracy"] for s in students if s.get("kd_accuracy") is not None), reverse=True)
    out.update({
        "pick": pick["arch"] if pick else None,
        "pick_kd_accuracy": pick["kd_accuracy"] if pick else None,
        "pick_rank_by_kd_accuracy": (trained.index(pick["kd_accuracy"]) + 1) if pick else None,
        "top_mean_kd_accuracy": _mean([s["kd_accuracy"] for s in tops]),
        "controls_mean_kd_accuracy": _mean(controls),
        "controls_best_kd_accuracy": max(controls) if controls else None,
        "pick_beats_controls_mean": (pick["kd_accuracy"] > _mean(controls)) if pick and controls else None,
        "pick_beats_controls_best": (pick["kd_accuracy"] > max(controls)) if pick and controls else None,
    })
    return out


_COLOURS = {"top": "tab:red", "control": "tab:blue", "vanilla-best": "tab:green", "include": "tab:purple"}


def plot_verify(report: dict[str, Any], path: str | Path) -> bool:
    """Proxy score vs KD accuracy, one colour per role (hollow markers: without the teacher).
    Each point is numbered; the numbers' archs are listed under the plot (whole, not cut), and a
    number that would overlap another is moved to a free place beside its point.
    Returns False when matplotlib is not installed (the JSON report is complete without it)."""
    students = [s for s in report["students"] if s.get("score") is not None and s.get("kd_accuracy") is not None]
    order = [s for role in _COLOURS for s in students if s["role"] == role]
    key = [f"{k + 1:>2}  {s['role']:<12} {s['arch']}" for k, s in enumerate(order)]
    key_in = 0.12 * len(key) + (0.15 if key else 0.0)  # inches of key lines under the axes
    try:
        from searchkd.io import agg_figure

        fig = agg_figure(figsize=(6.4, 4.6 + key_in), dpi=120)
    except ImportError:
        return False
    ax = fig.add_subplot()
    for role, colour in _COLOURS.items():
        rows = [s for s in order if s["role"] == role]
        if not rows:
            continue
        ax.scatter([s["score"] for s in rows], [s["kd_accuracy"] for s in rows], c=colour, label=f"{role} (KD)", zorder=3)
        van = [s for s in rows if s.get("vanilla_accuracy") is not None]
        if van:
            ax.scatter([s["score"] for s in van], [s["vanilla_accuracy"] for s in van], facecolors="none",
                       edgecolors=colour, label=f"{role} (no teacher)", zorder=2)
    t_acc = (report.get("teacher") or {}).get("accuracy")
    if t_acc is not None:
        ax.axhline(t_acc, ls="--", c="grey", lw=1, label=f"teacher {t_acc:.1f}%")
    c = report["verdict"]["proxy_vs_kd"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    ax.set_title(f"{report['config']['proxy']} vs KD accuracy: τ = {fmt(c['kendall_tau'])}, ρ = {fmt(c['spearman_rho'])} "
                 f"(n = {c['n']})", fontsize=9)
    ax.set_xlabel(f"proxy score ({report['config']['proxy']})")
    ax.set_ylabel("held-out accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    height = 4.6 + key_in
    fig.tight_layout(rect=(0, key_in / height, 1, 1))
    if key:
        fig.text(0.02, (key_in - 0.1) / height, "\n".join(key), family="monospace", fontsize=6, va="top", ha="left")
    markers = [(s["score"], s["vanilla_accuracy"]) for s in order if s.get("vanilla_accuracy") is not None]
    _number_points(fig, ax, [(s["score"], s["kd_accuracy"]) for s in order], markers)
    fig.savefig(path)
    return True


#: label offsets (points) tried in turn around a point; then further up, one row at a time
_OFFSETS = [(4, 3), (4, -10), (-12, 3), (-12, -10), (4, 12), (-12, 12), (4, -19), (-12, -19)]


def _number_points(fig: Any, ax: Any, points: Sequence[tuple[float, float]],
                   others: Sequence[tuple[float, float]] = ()) -> list[Any]:
    """Number the points 1, 2, …, each label at the first offset where it overlaps no other label
    and no marker (of ``points`` or ``others``)."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    r = 3.0 * fig.dpi / 72  # a marker's half width (scatter's default is 6 pt across)
    placed: list[Any] = [Bbox.from_extents(x - r, y - r, x + r, y + r)
                         for x, y in ax.transData.transform(list(points) + list(others))] if points else []
    labels = []
    for k, xy in enumerate(points):
        offsets = _OFFSETS + [(4, 21 + 9 * i) for i in range(60)]
        for dx, dy in offsets:
            ann = ax.annotate(str(k + 1), xy, xytext=(dx, dy), textcoords="offset points", fontsize=7, zorder=4)
            box = ann.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed):
                break
            ann.remove()
        placed.append(box)
        labels.append(ann)
    return labels
