"""Running searches: the driver, the local and Ray Tune runners, the trials log, plots, sweeps.

This is the only package that imports ray, and only inside the Ray runner and the sweep.
"""

from __future__ import annotations

from searchkd.orchestrate.driver import prepare, run_search
from searchkd.orchestrate.sweep import run_sweep

__all__ = ["run_search", "run_sweep", "prepare"]
