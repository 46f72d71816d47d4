"""Random search below the size of the space: its asks are distinct and uniform, and its
best() finds the optimum as often as the exact hypergeometric probability says."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from _toy_search import OPTIMUM, ToySpace, rng, run_strategy, toy_score
from scipy.stats import binomtest, chi2, hypergeom

from searchkd.strategies.random import RandomSearch


def _all_archs(space: ToySpace) -> list[str]:
    return [space.decode(list(v)) for v in np.ndindex(*space.bounds())]


def test_covers_the_space_without_repeats_then_stops():
    space = ToySpace(n=3, k=4)  # 64 archs
    s = RandomSearch(space, rng())
    asked = s.ask(64)
    assert len(set(asked)) == 64 and s.ask(1) == []


@pytest.mark.parametrize("retries", [100, 0])  # redraws of a repeat; 0: always a draw from the listed rest
def test_asks_are_distinct_and_uniform_below_the_space_size(retries):
    space = ToySpace(n=3, k=4)
    n_archs, budget, seeds = 64, 16, 600
    counts: Counter[str] = Counter()
    for seed in range(seeds):
        s = RandomSearch(space, rng(seed), retries=retries)
        asked = s.ask(5) + s.ask(5) + s.ask(6)
        assert len(set(asked)) == budget  # with replacement, 16 of 64 are all distinct 15% of the time
        counts.update(asked)
    # each seed asks a uniform 16-subset: the counts have mean seeds·p and covariance
    # seeds·p(1-p)·N/(N-1)·(I - 11ᵀ/N), so this statistic is chi-square with N-1 degrees of freedom
    p = budget / n_archs
    obs = np.array([counts[a] for a in _all_archs(space)])
    stat = float(((obs - seeds * p) ** 2).sum() / (seeds * p * (1 - p) * n_archs / (n_archs - 1)))
    assert chi2.sf(stat, n_archs - 1) > 1e-3


def test_finds_the_optimum_as_often_as_chance_says_with_a_quarter_of_the_space():
    space = ToySpace()  # 1,296 archs, one optimum, seven archs at score -1 around it
    archs = _all_archs(space)
    budget, seeds = len(archs) // 4, 200
    near = sum(toy_score(a) >= -1 for a in archs)
    bests = [run_strategy(RandomSearch(space, rng(seed)), budget=budget, ask=32)[0] for seed in range(seeds)]
    # P(a uniform sample of `budget` distinct archs holds at least one of K given archs)
    p_opt = hypergeom(len(archs), 1, budget).sf(0)  # 0.25
    p_near = hypergeom(len(archs), near, budget).sf(0)  # 0.901
    assert binomtest(sum(b == OPTIMUM for b in bests), seeds, p_opt).pvalue > 1e-3
    assert binomtest(sum(toy_score(b) >= -1 for b in bests), seeds, p_near).pvalue > 1e-3


def test_seeded():
    assert RandomSearch(ToySpace(), rng(3)).ask(10) == RandomSearch(ToySpace(), rng(3)).ask(10)
    assert RandomSearch(ToySpace(), rng(3)).ask(10) != RandomSearch(ToySpace(), rng(4)).ask(10)
