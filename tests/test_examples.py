"""Every example runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_score_students(capsys):
    rows = _load("score_students").main(["--batch-size", "16"])
    assert [r["arch"] for r in rows] == ["1-1-1", "3-3-3", "5-5-5"]
    assert "mean rank" in capsys.readouterr().out


def test_search_nb201(tmp_path):
    res = _load("search_nb201").main(["--budget", "6", "--out", str(tmp_path / "ex"), "--batch-size", "8"])
    assert res.trials == 6 and (tmp_path / "ex" / "result.json").exists()


def test_nni_space(tmp_path):
    pytest.importorskip("nni.nas.nn.pytorch")
    res = _load("nni_space").main(["--budget", "5", "--out", str(tmp_path / "nni"), "--batch-size", "8"])
    assert res.trials == 5 and res.best.arch.startswith('{"depth":')
