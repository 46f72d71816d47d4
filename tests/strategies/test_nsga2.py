from __future__ import annotations

import sys

import numpy as np
import pytest
from _toy_search import OPTIMUM, ToySpace, rng, run_strategy, toy_record

from searchkd.strategies.nsga2 import NSGA2Search, non_dominated


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_objective_finds_the_optimum(seed):
    best, _ = run_strategy(NSGA2Search(ToySpace(), rng(seed)), budget=400, ask=36)
    assert best == OPTIMUM


def _dominates(p, q):
    return all(a >= b for a, b in zip(p, q)) and any(a > b for a, b in zip(p, q))


def test_two_objectives_give_a_non_dominated_front():
    space = ToySpace()
    s = NSGA2Search(space, rng(0), n_objectives=2, population=20)
    seen = {}
    for _ in range(10):
        archs = s.ask(20)
        vals = [(toy_record(a)["scores"]["toy"], -toy_record(a)["params"]) for a in archs]
        seen.update(zip(archs, vals))
        s.tell(archs, vals)
    front = s.front()
    assert len(front) >= 3
    for p in front:
        for q in front:
            assert not _dominates(seen[p], seen[q])
    # and nothing seen dominates a front member
    for p in front:
        assert not any(_dominates(v, seen[p]) for v in seen.values())


def test_seeded_and_encodings_in_bounds():
    def asks(seed):
        s = NSGA2Search(ToySpace(), rng(seed), population=10)
        out = []
        for _ in range(3):
            a = s.ask(10)
            s.tell(a, [toy_record(x)["scores"]["toy"] for x in a])
            out += a
        return out

    a = asks(4)
    assert a == asks(4) and a != asks(5)
    assert all(0 <= v < 6 for arch in a for v in ToySpace().encode(arch))


def test_constraint_violations_steer_to_feasible():
    space = ToySpace()
    s = NSGA2Search(space, rng(0), population=20)
    for _ in range(8):
        archs = s.ask(20)
        sc = [toy_record(a)["scores"]["toy"] for a in archs]
        viol = [max(0.0, sum(space.encode(a)) - 6) for a in archs]
        s.tell(archs, sc, violations=viol)
    assert sum(space.encode(s.best())) <= 6


def test_non_dominated_matches_brute_force():
    pts = np.random.default_rng(0).random((60, 2))
    brute = [i for i, p in enumerate(pts) if not any(_dominates(q, p) for q in pts)]
    assert non_dominated(pts) == brute


def test_pymoo_only_imported_by_nsga2():
    import subprocess

    code = "import sys, searchkd.strategies, searchkd.orchestrate; print(any(m.startswith('pymoo') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_rescore_reranks_the_population_and_steers_the_next_parents():
    # rescore needs pymoo's algorithm.random_state (pymoo >= 0.6.1.6, the floor in pyproject)
    space = ToySpace()
    s = NSGA2Search(space, rng(0), population=12)
    for _ in range(3):
        archs = s.ask(12)
        s.tell(archs, [toy_record(a)["scores"]["toy"] for a in archs])
    flipped = lambda a: -toy_record(a)["scores"]["toy"]  # noqa: E731  the opposite objective
    s.rescore(flipped)
    assert s.best() == max(s._told, key=flipped)
    pop = [s._decode(x) for x in s.algorithm.pop.get("X")]
    ranked = s.algorithm.pop.get("rank")
    assert flipped(pop[int(np.argmin(ranked))]) == max(flipped(a) for a in pop)


def test_offspring_never_repeat_a_told_arch():
    s = NSGA2Search(ToySpace(n=2, k=5), rng(1), population=6)
    told: set[str] = set()
    while len(told) < 25:
        archs = s.ask(6)
        if 25 - len(told) >= 6:  # while the space has a generation's worth left, nothing repeats
            assert not set(archs) & told and len(set(archs)) == 6
        told |= set(archs)
        s.tell(archs, [toy_record(a)["scores"]["toy"] for a in archs])
    assert len(told) == 25
