"""Proxies against ground truth: ``ground_truth.py`` reads it (a CSV or the official NAS-Bench-201
file), ``stats.py`` computes rank statistics, ``correlation.py`` is ``searchkd bench correlation``.

The two lower modules are re-exported here; :mod:`searchkd.bench.correlation` (which calls the API)
is imported by name, so that reading ground truth or ranking scores never imports the API.
"""

from __future__ import annotations

from searchkd.bench.ground_truth import GroundTruth, read_ground_truth
from searchkd.bench.stats import rank_stats, rank_worst

__all__ = ["GroundTruth", "read_ground_truth", "rank_stats", "rank_worst"]
