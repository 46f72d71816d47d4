"""From trial records to what a strategy is told: objectives, the rank combination, feasibility.

Objectives (``SearchConfig.objectives``), all turned into "higher is better":

- ``proxy``: the proxy's score; with several proxies, their mean rank (``combine="rank"``);
- a proxy name: that proxy's score;
- ``params`` / ``flops``: the cost, negated (minimised).

**Incremental mean rank.** The mean rank of Abdelfattah et al. (ICLR 2021,
:func:`searchkd.evaluate.combine_ranks`) is only defined within a set. During a search the
set is "every feasible architecture evaluated so far": after each batch the ranks are
recomputed over all records and the strategy is re-told every score it holds
(:meth:`Strategy.rescore`), so tournaments and the final ``best`` always compare archs
under one ranking. As the set grows, two archs' mean ranks can swap order; the final best
is the top of the final ranking, and the trajectory plot uses the final ranks too. Since
the ranking depends only on the records, a replayed (resumed) search sees the same ranks.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from searchkd.errors import SearchKDError
from searchkd.evaluate import combine_ranks
from searchkd.strategies.nsga2 import non_dominated
from searchkd.types import OBJECTIVES_COST, Trial

__all__ = ["Objectives", "pareto_front"]


class Objectives:
    """The objective vectors of a config's ``objectives`` over a set of trials."""

    def __init__(self, objectives: Sequence[str], proxies: Sequence[str], combine: str = "rank") -> None:
        self.names = tuple(objectives)
        self.proxies = tuple(proxies)
        if not self.names:
            raise SearchKDError("no objective given (e.g. proxy, or proxy,params)")
        if len(set(self.names)) != len(self.names):
            raise SearchKDError(f"objectives repeat a name: {','.join(self.names)}")
        allowed = ("proxy", *self.proxies, *OBJECTIVES_COST)
        for o in self.names:
            if o not in allowed:
                raise SearchKDError(f"unknown objective {o!r} (proxy, {', '.join(self.proxies)}, params, flops)")
        if len(self.proxies) > 1 and combine != "rank":
            raise SearchKDError(f"unknown combine {combine!r}: several proxies are combined by 'rank' (mean rank)")
        #: whether objective values move as trials are added (the mean rank)
        self.dynamic = "proxy" in self.names and len(self.proxies) > 1
        self._ranks: dict[str, float] = {}

    def update(self, trials: Sequence[Trial]) -> None:
        """Recompute the mean ranks over ``trials`` (the feasible records so far)."""
        if self.dynamic:
            rows = [_clean(t.scores) for t in trials]
            self._ranks = dict(zip((t.arch for t in trials), combine_ranks(rows, self.proxies)))

    def proxy_value(self, t: Trial) -> float:
        """The scalar "proxy" objective of a trial (its mean rank when several proxies)."""
        if len(self.proxies) == 1:
            return float(t.scores[self.proxies[0]])
        return self._ranks[t.arch]

    def values(self, t: Trial) -> tuple[float, ...]:
        out = []
        for o in self.names:
            if o == "proxy":
                out.append(self.proxy_value(t))
            elif o in OBJECTIVES_COST:
                out.append(-float(getattr(t, o)))
            else:
                out.append(float(t.scores[o]))
        return tuple(out)

    def told(self, t: Trial) -> float | tuple[float, ...]:
        """What the strategy is told: a float for one objective, a tuple for several."""
        v = self.values(t)
        return v[0] if len(v) == 1 else v

    def worst(self) -> float | tuple[float, ...]:
        v = (-math.inf,) * len(self.names)
        return v[0] if len(v) == 1 else v


def _clean(scores: Mapping[str, Any]) -> dict[str, float]:
    # NaN would break ranking; it is a failed proxy like -inf
    return {k: (-math.inf if isinstance(v, float) and math.isnan(v) else float(v)) for k, v in scores.items()}


def pareto_front(trials: Sequence[Trial], points: Sequence[Sequence[float]]) -> list[Trial]:
    """The non-dominated trials (``points`` maximised), sorted by params then arch."""
    if not trials:
        return []
    finite = [[x if math.isfinite(x) else -1e300 for x in p] for p in points]
    front = [trials[i] for i in non_dominated(finite)]
    return sorted(front, key=lambda t: (t.params, t.arch))
