"""Scoring architectures: data + teacher + proxies in one :class:`Evaluator`.

``evaluator.py`` scores image spaces (and dispatches); ``text.py`` scores BERT spaces (the
SuperLM, text teachers and their data split).
"""

from __future__ import annotations

from searchkd.devices import resolve_device
from searchkd.evaluate.evaluator import EvalConfig, Evaluator, absolute_config, check_runs, combine_ranks, eval_config

__all__ = ["EvalConfig", "Evaluator", "absolute_config", "check_runs", "combine_ranks", "eval_config", "resolve_device"]
