"""The house drawn from the imports (issue 24): no import circle between modules, rooms that only
import downwards, and every module importable first in a fresh interpreter.

Imports are read from the source (``ast``), at module level and inside functions alike: a lazy
import is still a dependency, and a circle of lazy imports is still a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "searchkd"

#: the rooms from the bottom up (docs/architecture.md); a module may import its own room or a lower one
ROOMS = ["errors", "_version", "io", "progress", "seeds", "registry", "devices", "types", "trials",
         "spaces", "hf", "teachers", "data", "bench", "proxies", "supernets", "evaluate", "distill",
         "strategies", "defaults", "orchestrate", "api", "cli", "__main__"]
#: what may sit loose at the top of searchkd/: plumbing every room shares, the API and the entry points
TOP_LEVEL = {"__init__", "__main__", "_version", "api", "defaults", "devices", "errors", "io", "progress",
             "registry", "seeds", "trials", "types"}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _targets(mod: str, path: Path, node: ast.AST, mods: dict[str, Path]) -> list[str]:
    """The searchkd modules (or packages) an import statement names."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1]) if node.level else ""
        base = ".".join(x for x in (base, node.module or "") if x)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
    out = []
    for t in names:
        while t and t not in mods:
            t = t.rpartition(".")[0]
        if t.startswith("searchkd") and t != mod:
            out.append(t)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[m].update(_targets(m, p, node, mods))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _room(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_cycle_finder_finds_a_planted_circle() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph()) == []


def test_rooms_only_import_downwards() -> None:
    graph = import_graph()
    rooms = {_room(m) for m in graph} - {"__init__"}
    assert rooms <= set(ROOMS), f"place the new room(s) {sorted(rooms - set(ROOMS))} in ROOMS"
    up = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts
                if _room(m) != "__init__" and _room(t) != "__init__" and ROOMS.index(_room(t)) > ROOMS.index(_room(m)))
    assert up == []
    # nothing below the package root imports the root itself (its lazy API export sits above all)
    assert sorted(m for m, ts in graph.items() if "searchkd" in ts and m != "searchkd.__main__") == []


def test_nothing_else_is_loose_at_the_top() -> None:
    loose = {p.stem for p in PKG.glob("*.py")}
    assert loose <= TOP_LEVEL, f"{sorted(loose - TOP_LEVEL)} belong in a room"


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module imported with no searchkd module loaded before it (torch and other third-party
    modules stay cached, so this is one interpreter, not one per module), in name order and in
    reverse: an import circle at module level would fail one of them."""
    mods = sorted(m for m in _modules() if not m.endswith("__main__"))
    code = (
        "import importlib, sys\n"
        f"mods = {mods!r}\n"
        "bad = []\n"
        "for order in (mods, mods[::-1]):\n"
        "    for m in order:\n"
        "        for k in [k for k in sys.modules if k == 'searchkd' or k.startswith('searchkd.')]:\n"
        "            del sys.modules[k]\n"
        "        try:\n"
        "            importlib.import_module(m)\n"
        "        except ModuleNotFoundError as e:\n"
        "            if (e.name or '').startswith('searchkd'):\n"
        "                bad.append(f'{m}: {e}')\n"
        "        except Exception as e:\n"
        "            bad.append(f'{m}: {type(e).__name__}: {e}')\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         cwd=PKG.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", ["api", "cli", "teachers", "evaluate", "bench"])
def test_public_names_stay_where_the_readme_shows_them(name: str) -> None:
    import importlib

    mod = importlib.import_module(f"searchkd.{name}")
    expected = {"api": ["search", "score", "distill", "correlation", "default_proxy", "default_data", "load_acm"],
                "cli": ["main", "build_parser"], "teachers": ["resolve_teacher", "build_teacher", "load_weights"],
                "evaluate": ["Evaluator", "EvalConfig", "resolve_device", "combine_ranks"],
                "bench": ["rank_stats", "rank_worst", "read_ground_truth"]}[name]
    assert [n for n in expected if not hasattr(mod, n)] == []
