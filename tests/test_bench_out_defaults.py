"""Issue 23 item 9: a benchmark run without --out must not overwrite a committed figure in
benchmarks/out/ (`benchmarks/acm.py --run runs/acm`, as the README wrote it, replaced
benchmarks/out/acm.json with a newcomer's tiny-run numbers): every script's default is under runs/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: a replicated study whose folder in benchmarks/out is its own running record (see its docstring)
STUDY = {"kd_study.py"}


def _out_defaults(path: Path) -> list[str]:
    """The source of every --out default (add_argument("--out", default=…) and `out or …`)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args \
                and isinstance(node.args[0], ast.Constant) and node.args[0].value == "--out":
            found += [ast.unparse(k.value) for k in node.keywords if k.arg == "default"]
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and ast.unparse(node.values[0]).endswith(".out"):
            found += [ast.unparse(v) for v in node.values[1:]]
    return found


SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_") and p.name not in STUDY)


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_no_benchmark_writes_a_committed_figure_unless_asked(path):
    for default in _out_defaults(path):  # OUT / "x.json", HERE / "out" / …, "benchmarks/out/…"
        assert not re.search(r"\bOUT\b|[\"']out[\"']|benchmarks/out", default), f"{path.name}: --out default {default}"


def test_the_scan_sees_the_defaults():
    assert _out_defaults(ROOT / "benchmarks" / "acm.py") and _out_defaults(ROOT / "benchmarks" / "kd_ranking.py")
