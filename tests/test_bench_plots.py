"""Drawing never switches matplotlib's backend (a notebook user's stays as it was)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_plots_leave_the_backend_and_pyplot_alone(tmp_path) -> None:
    code = textwrap.dedent(f"""
        import sys
        import matplotlib
        matplotlib.use("svg")  # any backend but Agg: the one a user chose
        before = matplotlib.get_backend()
        import searchkd
        from searchkd.orchestrate.plots import plot_correlation as _scatter
        from searchkd.orchestrate.objective import Objectives
        from searchkd.orchestrate.plots import plot_search
        from searchkd.types import SearchResult, Trial

        out = {str(tmp_path)!r}
        trials = [Trial(i, f"a{{i}}", {{"p": float(i)}}, 1.0 + i, 2.0) for i in range(4)]
        result = SearchResult({{"strategy": "random", "space": "toy"}}, trials[-1], trials, 4, 0.0, history=trials)
        assert len(plot_search(result, Objectives(("proxy",), ("p",)), out)) == 2
        _scatter(__import__("pathlib").Path(out) / "scatter.png", [{{"p": 1.0}}, {{"p": float("-inf")}}, {{"p": 3.0}}],
                 [1.0, 2.0, 3.0], ["p"], "acc")
        assert matplotlib.get_backend() == before, (before, matplotlib.get_backend())
        assert "matplotlib.pyplot" not in sys.modules
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    for name in ("pareto.png", "trajectory.png", "scatter.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
