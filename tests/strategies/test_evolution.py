from __future__ import annotations

import numpy as np
import pytest
from _toy_search import OPTIMUM, ToySpace, rng, run_strategy, toy_score

from searchkd.errors import SearchKDError
from searchkd.strategies.evolution import RegularizedEvolution


def test_defaults_are_disWOTs():
    s = RegularizedEvolution(ToySpace(), rng())
    assert (s.population_size, s.sample_size) == (36, 8)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_finds_the_optimum(seed):
    best, n = run_strategy(RegularizedEvolution(ToySpace(), rng(seed)), budget=300)
    assert best == OPTIMUM and n <= 300


def test_initial_population_is_random_then_children_are_one_mutation_away():
    space = ToySpace()
    s = RegularizedEvolution(space, rng(), population=10, sample_size=3)
    first = s.ask(4) + s.ask(100)  # the second ask stops at the population size
    assert len(first) == 10
    s.tell(first, [toy_score(a) for a in first])
    children = s.ask(20)
    assert len(children) == 20
    pop = set(first)
    for c in children:
        assert any(sum(x != y for x, y in zip(space.encode(c), space.encode(p))) == 1 for p in pop)


def test_aging_removes_the_oldest_not_the_worst():
    s = RegularizedEvolution(ToySpace(), rng(), population=3, sample_size=2)
    init = s.ask(3)
    s.tell(init, [100.0, -1.0, -2.0])  # the first is by far the best
    child = s.ask(1)
    s.tell(child, [-50.0])
    assert [a for a, _, _ in s.population] == init[1:] + child


def test_same_seed_same_asks_and_no_global_rng():
    np.random.seed(123)
    state = np.random.get_state()[1].copy()

    def asks(seed):
        s = RegularizedEvolution(ToySpace(), rng(seed), population=6, sample_size=2)
        out = []
        for _ in range(5):
            a = s.ask(4)
            s.tell(a, [toy_score(x) for x in a])
            out += a
        return out

    assert asks(5) == asks(5) and asks(5) != asks(6)
    assert (np.random.get_state()[1] == state).all()


def test_infeasible_loses_to_feasible():
    s = RegularizedEvolution(ToySpace(), rng(), population=2, sample_size=2)
    a = s.ask(2)
    s.tell(a, [10.0, -10.0], violations=[0.5, 0.0])
    assert s.best() == a[1]


def test_rescore_replaces_held_scores():
    s = RegularizedEvolution(ToySpace(), rng(), population=3)
    a = s.ask(3)
    s.tell(a, [3.0, 2.0, 1.0])
    assert s.best() == a[0]
    s.rescore(lambda x: {a[0]: 0.0, a[1]: 1.0, a[2]: 5.0}[x])
    assert s.best() == a[2]


def test_two_objectives_are_refused():
    with pytest.raises(SearchKDError, match="nsga2"):
        RegularizedEvolution(ToySpace(), rng(), n_objectives=2)


def test_tournament_parent_is_the_best_of_its_draws_with_replacement():
    import copy

    s = RegularizedEvolution(ToySpace(), rng(7), population=12, sample_size=5)
    init = s.ask(12)
    scores = [float(i * 7 % 12) for i in range(12)]  # distinct, not in ask order
    s.tell(init, scores)
    members = [a for a, _, _ in s.population]
    score_of = dict(zip(init, scores))
    repeats = 0
    for _ in range(200):
        mirror = copy.deepcopy(s.rng)
        idx = mirror.integers(len(members), size=5)  # the draws the tournament will make
        repeats += len(set(idx.tolist())) < 5
        expected = max((members[i] for i in idx), key=score_of.__getitem__)
        assert s._tournament() == expected
    assert repeats > 0  # with replacement, as in Real et al.'s Algorithm 1


def test_a_converged_population_keeps_proposing_unseen_archs():
    space = ToySpace(n=2, k=4)  # 16 archs: the population converges at once
    s = RegularizedEvolution(space, rng(), population=4, sample_size=4)
    seen: list[str] = []
    while True:
        a = s.ask(3)
        if not a:
            break
        assert not set(a) & set(seen) and len(set(a)) == len(a)
        seen += a
        s.tell(a, [toy_score(x) for x in a])
    assert sorted(seen) == sorted(space.decode([i, j]) for i in range(4) for j in range(4))


def test_redraws_zero_is_the_papers_algorithm_and_repeats():
    space = ToySpace(n=2, k=3)
    s = RegularizedEvolution(space, rng(), population=3, sample_size=3, redraws=0)
    a = s.ask(3)
    s.tell(a, [toy_score(x) for x in a])
    children = []
    for _ in range(20):
        c = s.ask(1)
        s.tell(c, [toy_score(x) for x in c])
        children += c
    assert len(set(children)) < len(children)  # repeats are proposed (the driver answers them from its cache)
