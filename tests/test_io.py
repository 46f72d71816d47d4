"""The one JSON writer (strict: non-finite → null; atomic), its JSONL append, and trials.jsonl."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from searchkd.errors import SearchKDError
from searchkd.io import append_jsonl, dumps, read_json, strict, write_json, write_rows
from searchkd.trials import append_trials, read_trials
from searchkd.types import Trial


def _strict_load(text: str):
    def refuse(name: str):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null(tmp_path) -> None:
    obj = {"a": math.nan, "b": [1.0, -math.inf, math.inf], "c": (np.float32(2.5), np.float64("nan")),
           "d": np.array([1, 2]), "e": "-inf", "f": True, "g": None}
    assert strict(obj) == {"a": None, "b": [1.0, None, None], "c": [2.5, None], "d": [1, 2], "e": "-inf",
                           "f": True, "g": None}
    path = tmp_path / "sub" / "x.json"
    write_json(path, obj)
    assert _strict_load(path.read_text())["b"] == [1.0, None, None]
    assert read_json(path)["a"] is None
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # the temp file was renamed away
    assert _strict_load(dumps({"x": math.inf})) == {"x": None}


def test_jsonl_append_and_rows_are_strict(tmp_path) -> None:
    path = tmp_path / "log.jsonl"
    append_jsonl(path, [{"s": -math.inf}])
    append_jsonl(path, [])
    append_jsonl(path, [{"s": 1.0}, {"s": math.nan}])
    assert [_strict_load(x) for x in path.read_text().splitlines()] == [{"s": None}, {"s": 1.0}, {"s": None}]
    write_rows(tmp_path / "rows.jsonl", [{"arch": "a", "p": -math.inf}])
    assert _strict_load((tmp_path / "rows.jsonl").read_text()) == {"arch": "a", "p": None}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SearchKDError, match="cannot read"):
        read_json(tmp_path / "bad.json")


def test_trials_log_writes_a_failed_proxy_as_null_and_reads_it_back_worst(tmp_path) -> None:
    log = tmp_path / "trials.jsonl"
    trials = [Trial(0, "a", {"p": -math.inf, "q": 1.0}, 1.0, 2.0), Trial(1, "b", {"p": 0.5, "q": math.nan}, 1.0, 2.0)]
    append_trials(log, trials)
    lines = [_strict_load(x) for x in log.read_text().splitlines()]
    assert lines[0]["scores"] == {"p": None, "q": 1.0} and lines[1]["scores"]["q"] is None
    back, good = read_trials(log)
    assert good == log.stat().st_size
    assert back[0].scores["p"] == -math.inf and back[1].scores["q"] == -math.inf and back[1].arch == "b"
    # a log of an older version, with "-inf" strings, still reads
    old = tmp_path / "old.jsonl"
    old.write_text('{"i": 0, "arch": "a", "scores": {"p": "-inf"}, "params": 1.0, "flops": 2.0, "seconds": 0.0}\n')
    assert read_trials(old)[0][0].scores["p"] == -math.inf
