"""The two plots of a search: ``pareto.png`` and ``trajectory.png``.

Every searchkd figure is a :class:`matplotlib.figure.Figure` on its own Agg canvas
(:func:`agg_figure`): no pyplot, and matplotlib's global backend is never switched, so a
notebook's backend is left as it was.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from searchkd.io import agg_figure
from searchkd.types import SearchResult

__all__ = ["plot_search", "plot_correlation", "agg_figure"]


def plot_search(result: SearchResult, objectives: Any, out_dir: str | Path) -> list[Path]:
    """Write ``pareto.png`` (proxy objective vs params, front and best marked) and
    ``trajectory.png`` (best-so-far proxy objective vs evaluations, under the final ranking).

    A plotting failure only warns: the search result is already written.
    """
    out = Path(out_dir)
    trials = result.history
    objectives.update(trials)
    ylabel = objectives.proxies[0] if len(objectives.proxies) == 1 else "mean rank of " + ",".join(objectives.proxies)
    y = [objectives.proxy_value(t) for t in trials]
    paths = []
    try:
        fig = agg_figure(figsize=(6, 4.2))
        ax = fig.subplots()
        ax.scatter([t.params for t in trials], y, s=10, alpha=0.5, label="evaluated")
        front = sorted(result.pareto, key=lambda t: t.params)
        by_arch = {t.arch: t for t in trials}
        fy = [objectives.proxy_value(by_arch[t.arch]) for t in front if t.arch in by_arch]
        ax.plot([t.params for t in front if t.arch in by_arch], fy, "o-", color="tab:red", ms=4, label="Pareto front")
        if result.best is not None and result.best.arch in by_arch:
            ax.scatter([result.best.params], [objectives.proxy_value(by_arch[result.best.arch])], marker="*", s=160,
                       color="gold", edgecolor="k", zorder=5, label="best")
        ax.set_xlabel("params (M)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{result.config.get('strategy')} on {result.config.get('space')}: {len(trials)} evaluations")
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "pareto.png", dpi=120)
        paths.append(out / "pareto.png")

        fig = agg_figure(figsize=(6, 4.2))
        ax = fig.subplots()
        best, run = float("-inf"), []
        for v in y:
            best = max(best, v)
            run.append(best)
        ax.plot(range(1, len(run) + 1), run)
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"best so far: {ylabel}")
        ax.set_title(f"{result.config.get('strategy')} on {result.config.get('space')}: best so far over "
                     f"{len(trials)} evaluations")
        fig.tight_layout()
        fig.savefig(out / "trajectory.png", dpi=120)
        paths.append(out / "trajectory.png")
    except Exception as e:  # a plot must never lose a finished search
        warnings.warn(f"plotting failed: {e}", RuntimeWarning, stacklevel=2)
    return paths


def plot_correlation(path: Path, rows: list[dict[str, Any]], truth: list[float], cols: list[str], column: str) -> None:
    """One panel per proxy: score vs ground truth. A proxy whose finite values span three
    decades or more (synflow: 1e10 … 1e49) gets a log x axis when they are all positive, else
    its ranks (1 = lowest), so the points do not collapse onto x ≈ 0."""
    import numpy as np
    from scipy.stats import rankdata

    from searchkd.bench.stats import rank_stats


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
