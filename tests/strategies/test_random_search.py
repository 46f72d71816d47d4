from __future__ import annotations

from _toy_search import OPTIMUM, ToySpace, rng, run_strategy

from searchkd.strategies.random import RandomSearch


def test_covers_the_space_without_repeats():
    space = ToySpace(n=3, k=4)  # 64 archs
    s = RandomSearch(space, rng())
    asked = s.ask(64)
    assert len(set(asked)) == 64


def test_finds_the_optimum_when_the_budget_covers_the_space():
    best, n = run_strategy(RandomSearch(ToySpace(), rng(1)), budget=1296, ask=64)
    assert best == OPTIMUM and n == 1296


def test_seeded():
    assert RandomSearch(ToySpace(), rng(3)).ask(10) == RandomSearch(ToySpace(), rng(3)).ask(10)
