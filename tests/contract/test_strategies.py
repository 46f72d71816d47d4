"""Every registered ask/tell strategy finds the optimum of a toy space within a budget."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import searchkd.strategies  # noqa: F401  (registration)
from searchkd.registry import STRATEGIES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strategies"))
from _toy_search import OPTIMUM, ToySpace, run_strategy  # noqa: E402

ASK_TELL = [n for n in STRATEGIES.names() if hasattr(STRATEGIES.get(n), "ask")]
# random needs the whole space to be sure; the others find it well within a third of it
BUDGET = {"random": 1296}


@pytest.mark.parametrize("name", ASK_TELL)
def test_finds_the_toy_optimum(name):
    cls = STRATEGIES.get(name)
    best, n = run_strategy(cls(ToySpace(), np.random.default_rng(0)), budget=BUDGET.get(name, 400),
                           ask=cls.default_ask_size)
    assert best == OPTIMUM


@pytest.mark.parametrize("name", ASK_TELL)
def test_docstring_names_a_paper_and_registry_describes_it(name):
    import inspect

    doc = inspect.getmodule(STRATEGIES.get(name)).__doc__ or ""
    assert any(y in doc for y in ("19", "20")) and STRATEGIES.description(name)


@pytest.mark.parametrize("name", ASK_TELL)
def test_deterministic_under_seed(name):
    cls = STRATEGIES.get(name)

    def run(seed):
        s = cls(ToySpace(), np.random.default_rng(seed))
        out = []
        for _ in range(3):
            a = s.ask(8)
            s.tell(a, [float(len(x)) - sum(map(int, x.split("-"))) for x in a])
            out += a
        return out

    assert run(0) == run(0)
