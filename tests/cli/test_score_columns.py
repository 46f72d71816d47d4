"""`searchkd score`'s params/flops columns: the data's class count, one column each (issue 14, item 9)."""

from __future__ import annotations

import numpy as np
import pytest

from searchkd import api
from searchkd.cli import main
from searchkd.errors import SearchKDError
from searchkd.spaces import count_cost, get_space

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def c100(tmp_path_factory) -> str:
    """200 images with labels 0..99: a 100-class data set."""
    path = tmp_path_factory.mktemp("c100") / "c100.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8), y=np.arange(200) % 100)
    return f"npz:{path}"


@pytest.mark.parametrize("space, arch", [("nb201", CELL), ("resnet_cifar", "2-2-2")])
def test_params_and_flops_count_the_data_classes(c100, space, arch):
    sp = get_space(space)
    row = api.score_archs(space, [arch], ["synflow"], data=c100, batch_size=64, progress=False)[0]
    built = count_cost(sp.build(arch, num_classes=100))
    assert row["params"] == pytest.approx(built["params"], abs=1e-12)
    assert row["flops"] == pytest.approx(built["flops"], abs=1e-12)
    # a 100-way head has 90 × (64 + 1) = 5,850 more parameters than the 10-way one
    assert row["params"] - sp.cost(arch)["params"] == pytest.approx(5850e-6, abs=1e-12)


def test_ten_classes_keep_the_closed_form_cost(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "c10.npz", x=rng.integers(0, 256, (80, 32, 32, 3), dtype=np.uint8), y=np.arange(80) % 10)
    row = api.score_archs("nb201", [CELL], ["synflow"], data=f"npz:{tmp_path / 'c10.npz'}", progress=False)[0]
    assert row["params"] == get_space("nb201").cost(CELL)["params"]


def test_proxy_params_is_one_column_equal_to_the_built_network(c100, capsys):
    assert main(["score", "--space", "nb201", "--proxy", "params", "--arch", CELL, "--data", c100, "--quiet"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["arch", "params", "flops"]
    assert float(row.split()[1]) == pytest.approx(1.53740, abs=1e-5)  # 1.53155 with a 10-way head


def test_a_search_counts_the_data_classes_in_its_trials_and_budget(c100, tmp_path):
    """trials.jsonl/result.json and --max-params see the 100-way head the students are built with."""
    import json

    sp = get_space("resnet_cifar")
    archs = [sp.decode(list(v)) for v in np.ndindex(*sp.bounds())]
    # a budget between an arch's 10-class and 100-class size: feasible only under the wrong count
    arch = "1-1-1"
    m = sp.cost(arch)["params"] + 1e-6
    assert sp.cost(arch, num_classes=100)["params"] > m
    res = api.search("resnet_cifar", "params", "random", budget=len(archs), seed=0, data=c100, batch_size=64,
                     max_params=sp.cost(arch, num_classes=100)["params"] + 1e-9, out=str(tmp_path / "s"), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "s" / "trials.jsonl").read_text().splitlines()]
    feasible = [r for r in rows if r.get("params") is not None and r.get("feasible", True)]
    assert feasible and res.best.arch == arch  # the one arch within the 100-class budget
    for r in feasible:
        assert r["params"] == pytest.approx(sp.cost(r["arch"], num_classes=100)["params"], abs=1e-12)
    assert res.best.params == pytest.approx(sp.cost(res.best.arch, num_classes=100)["params"], abs=1e-12)
    with pytest.raises(SearchKDError, match="below the smallest"):
        api.search("resnet_cifar", "params", "random", budget=3, seed=0, data=c100, batch_size=64, max_params=m,
                   out=str(tmp_path / "t"), progress=False)
