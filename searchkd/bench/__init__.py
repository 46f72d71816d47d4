"""Rank statistics of scores against ground truth (:mod:`~searchkd.bench.stats`); ground truth itself
is read by :mod:`searchkd.data.ground_truth` (re-exported here). ``searchkd bench correlation`` is
:func:`searchkd.api.correlation`.
"""

from __future__ import annotations

from searchkd.bench.stats import rank_stats, rank_worst
from searchkd.data.ground_truth import GroundTruth, read_ground_truth

__all__ = ["GroundTruth", "read_ground_truth", "rank_stats", "rank_worst"]
