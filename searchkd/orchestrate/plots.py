"""The two plots of a search: ``pareto.png`` and ``trajectory.png`` (matplotlib, Agg, lazy)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from searchkd.types import SearchResult

__all__ = ["plot_search"]


def plot_search(result: SearchResult, objectives: Any, out_dir: str | Path) -> list[Path]:
    """Write ``pareto.png`` (proxy objective vs params, front and best marked) and
    ``trajectory.png`` (best-so-far proxy objective vs evaluations, under the final ranking).

    A plotting failure only warns: the search result is already written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except Exception as e:  # pragma: no cover - matplotlib is a dependency
        warnings.warn(f"no plots: {e}", RuntimeWarning, stacklevel=2)
        return []
    out = Path(out_dir)
    trials = result.history
    objectives.update(trials)
    ylabel = objectives.proxies[0] if len(objectives.proxies) == 1 else "mean rank of " + ",".join(objectives.proxies)
    y = [objectives.proxy_value(t) for t in trials]
    paths = []
    try:
        fig, ax = plt.subplots(figsize=(6, 4.2))
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
        plt.close(fig)
        paths.append(out / "pareto.png")

        fig, ax = plt.subplots(figsize=(6, 4.2))
        best, run = float("-inf"), []
        for v in y:
            best = max(best, v)
            run.append(best)
        ax.plot(range(1, len(run) + 1), run)
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"best so far: {ylabel}")
        fig.tight_layout()
        fig.savefig(out / "trajectory.png", dpi=120)
        plt.close(fig)
        paths.append(out / "trajectory.png")
    except Exception as e:  # a plot must never lose a finished search
        warnings.warn(f"plotting failed: {e}", RuntimeWarning, stacklevel=2)
    return paths
