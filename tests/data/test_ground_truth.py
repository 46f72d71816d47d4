"""Ground truth from a CSV and from the official NAS-Bench-201 file through ``nas_201_api``.

The test writes a small file in the benchmark's own format (``meta_archs``, ``arch2infos``
with ``less``/``full`` ArchResults state dicts, ``evaluated_indexes``), with the CIFAR-10
test accuracies of the shared CSV, and reads it through the real ``NASBench201API``.
"""

from __future__ import annotations

import csv
import json

import pytest

from searchkd.cli import main
from searchkd.data.ground_truth import read_ground_truth

DATASETS = {"cifar10": ("ori-test",), "cifar100": ("x-valid", "x-test", "ori-test")}


def _results(api_utils, index, arch, accs_by_set, dataset, seeds=(777, 888), epochs=2):
    """An ArchResults with one ResultsCount per seed; the seeds' accuracies average to accs_by_set."""
    ar = api_utils.ArchResults(index, arch)
    for k, seed in enumerate(seeds):
        delta = (-0.5, 0.5)[k]
        r = api_utils.ResultsCount(dataset, None, {e: 50.0 for e in range(epochs)}, {e: 1.0 for e in range(epochs)},
                                   1.0, 100.0, {"arch_str": arch}, seed, epochs, None)
        accs, losses, times = {}, {}, {}
        for name, acc in accs_by_set.items():
            for e in range(epochs):
                accs[f"{name}@{e}"] = acc + delta if e == epochs - 1 else 10.0
                losses[f"{name}@{e}"], times[f"{name}@{e}"] = 1.0, 0.1
        r.update_eval(accs, losses, times)
        ar.update(dataset, seed, r)
    return ar


@pytest.fixture
def nb201_file(tmp_path_factory, nb201_csv):
    """A NAS-Bench-201 file of 5 archs of the shared CSV (indices kept), for cifar10 and cifar100."""
    import torch

    api_utils = pytest.importorskip("nas_201_api.api_utils")
    with open(nb201_csv, newline="") as f:
        rows = list(csv.DictReader(f))[:5]
    n = max(int(r["index"]) for r in rows) + 1
    meta = [f"|none~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~{i}|" for i in range(n)]  # placeholders
    arch2infos = {}
    for r in rows:
        i, arch, acc = int(r["index"]), r["arch"], float(r["cifar10_test_acc"])
        meta[i] = arch
        full = _results(api_utils, i, arch, {"ori-test": acc}, "cifar10")
        c100 = _results(api_utils, i, arch, {"x-valid": acc - 20, "x-test": acc - 21, "ori-test": acc - 20.5}, "cifar100")
        for key, value in c100.all_results.items():
            full.update(key[0], key[1], value)
        less = _results(api_utils, i, arch, {"ori-test": 0.0}, "cifar10")  # the 12-epoch schedule: never read
        arch2infos[i] = {"less": less.state_dict(), "full": full.state_dict()}
    path = tmp_path_factory.mktemp("nb201") / "NAS-Bench-201-tiny.pth"
    torch.save({"meta_archs": meta, "arch2infos": arch2infos, "evaluated_indexes": sorted(arch2infos)}, path)
    return path, {r["arch"]: (int(r["index"]), float(r["cifar10_test_acc"])) for r in rows}


def test_the_official_format_through_the_real_api_matches_the_shared_csv(nb201_file, nb201_csv):
    path, expected = nb201_file
    gt = read_ground_truth(f"nb201:{path}", "test-accuracy", "cifar10")
    csv_gt = read_ground_truth(nb201_csv, "cifar10_test_acc")
    assert set(gt) == set(expected)
    for arch, (index, acc) in expected.items():
        assert gt[arch] == pytest.approx(acc) == pytest.approx(csv_gt[arch])  # the mean over the two seeds
        assert gt.index[arch] == index == csv_gt.index[arch]
    assert read_ground_truth(f"nb201:{path}", "cifar10_test_acc") == gt  # the CSV's column name works too
    c100 = read_ground_truth(f"nb201:{path}", "test-accuracy", "cifar100")
    assert all(c100[a] == pytest.approx(acc - 21) for a, (_, acc) in expected.items())  # x-test


def test_bench_correlation_on_nb201_file_with_a_dataset(nb201_file, tmp_path, capsys):
    path, expected = nb201_file
    out = tmp_path / "c.json"
    assert main(["bench", "correlation", "--space", "nb201", "--proxy", "params", "--ground-truth", f"nb201:{path}",
                 "--column", "test-accuracy", "--dataset", "cifar100", "--out", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 5 and res["dataset"] == "cifar100" and "params" in res["proxies"]
    with open(out.with_suffix(".scores.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["arch"]: int(r["index"]) for r in rows} == {a: i for a, (i, _) in expected.items()}


@pytest.mark.parametrize("args, fragment", [
    (["--ground-truth", "nb201:/nonexistent.pth", "--column", "test-accuracy"], "NAS-Bench-201 file not found"),
    (["--ground-truth", "nb201:FILE", "--column", "test-accuracy", "--dataset", "cifar9"], "unknown --dataset 'cifar9'"),
    (["--ground-truth", "nb201:FILE", "--column", "top5", "--dataset", "cifar10"], "has no column 'top5'"),
    (["--ground-truth", "nb201:NOTPTH", "--column", "test-accuracy"], "is not a NAS-Bench-201 file"),
    (["--ground-truth", "CSV", "--column", "cifar10_test_acc", "--dataset", "cifar100"], "is a CSV"),
])
def test_bad_nb201_ground_truth_is_one_line(nb201_file, nb201_csv, tmp_path, capsys, args, fragment):
    path, _ = nb201_file
    (tmp_path / "not.pth").write_text("not a pickle")
    args = [a.replace("FILE", str(path)).replace("NOTPTH", str(tmp_path / "not.pth")).replace("CSV", str(nb201_csv))
            for a in args]
    assert main(["bench", "correlation", "--space", "nb201", "--proxy", "params", *args,
                 "--out", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchkd: error: ") and err.count("\n") == 1 and fragment in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not.pth"]


def test_ground_truth_reading_is_below_api_and_orchestrate():
    import subprocess
    import sys

    code = ("import sys, searchkd.data.ground_truth, searchkd.bench; "
            "bad = [m for m in ('searchkd.api', 'searchkd.orchestrate', 'torch') if m in sys.modules]; "
            "assert searchkd.bench.read_ground_truth is searchkd.data.ground_truth.read_ground_truth; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_search_leaves_the_users_matplotlib_backend_alone(tmp_path):
    import subprocess
    import sys

    pytest.importorskip("matplotlib")
    code = f"""
import matplotlib
matplotlib.use("svg")
import searchkd
searchkd.search(space="resnet_cifar", proxy="params", strategy="random", budget=3, out={str(tmp_path / 'o')!r})
import sys
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["svg", "False"]
    assert (tmp_path / "o" / "pareto.png").exists()
