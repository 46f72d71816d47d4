from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from searchkd.errors import SearchKDError
from searchkd.proxies import Scorer
from searchkd.proxies.kd import DEFAULT, KDConfig, kd_score
from searchkd.spaces import get_space

KD_JSON = Path(__file__).resolve().parents[2] / "benchmarks" / "out" / "kd_ranking.json"


def test_kd_score_by_hand():
    cfg = KDConfig("snip", w_zc=0.5, w_diswot=0.25, w_flops=0.4)
    parts = {"params": 2.0, "teacher_params": 8.0, "zc": math.e ** 2, "diswot": -math.exp(-1), "flops": 3.0,
             "teacher_flops": 30.0}
    assert kd_score(parts, cfg) == pytest.approx(math.log(0.25) + 0.4 * math.log(0.1) + 0.5 * 2 + 0.25 * 1)
    # weights of zero leave the size ratio alone
    assert kd_score(parts, KDConfig("snip", 0.0, 0.0)) == pytest.approx(math.log(0.25))


def test_kd_ranking_is_scale_free_and_failures_rank_worst():
    cfg = KDConfig("snip", w_zc=0.7, w_diswot=0.3)  # (no FLOPs term: parts without flops)
    students = [(1.0, 3.0, -0.2), (2.0, 1.0, -0.1), (0.5, 9.0, -0.05)]

    def scores(zc_scale, d_scale):
        return [kd_score({"params": p, "teacher_params": 4.0, "zc": z * zc_scale, "diswot": d * d_scale}, cfg)
                for p, z, d in students]

    base, scaled = scores(1, 1), scores(1e6, 1e-3)
    shift = scaled[0] - base[0]
    assert [s - b for s, b in zip(scaled, base)] == pytest.approx([shift] * 3)
    assert kd_score({"params": 1.0, "teacher_params": 4.0, "zc": 0.0, "diswot": -0.1}, cfg) == -math.inf
    assert kd_score({"params": 1.0, "teacher_params": 4.0, "zc": math.nan, "diswot": -0.1}, cfg) == -math.inf


def test_kd_equals_its_parts_scored_separately():
    """The registered proxy, on real students, equals kd_score of params, flops, the zero-cost
    proxy and diswot scored as separate proxies (same seed, same teacher, same batch)."""
    space = get_space("resnet_cifar")
    torch.manual_seed(0)
    batch = (torch.randn(16, 3, 32, 32), torch.arange(16) % 10)
    teacher = space.build("3-3-3")
    together = Scorer(["kd"], batch, teacher=teacher, seed=3)
    apart = Scorer([DEFAULT.zc, "diswot", "params", "flops"], batch, teacher=teacher, seed=3)
    t = space.cost("3-3-3")
    for arch in ("1-1-1", "2-1-3", "3-2-1"):
        got = together.score_arch(space, arch)["scores"]["kd"]
        p = apart.score_arch(space, arch)["scores"]
        want = kd_score({"params": p["params"], "teacher_params": t["params"], "zc": p[DEFAULT.zc],
                         "diswot": p["diswot"], "flops": p["flops"], "teacher_flops": t["flops"]})
        assert got == pytest.approx(want, rel=1e-6)
    # and the default ranks like its formula from the spaces' own cost model
    c = space.cost("2-1-3")
    assert together.score_arch(space, "2-1-3")["scores"]["kd"] == pytest.approx(
        math.log(c["params"] / t["params"]) + DEFAULT.w_flops * math.log(c["flops"] / t["flops"]), rel=1e-6)


def test_kd_needs_a_teacher():
    with pytest.raises(SearchKDError, match="needs a teacher"):
        Scorer(["kd"], (torch.randn(2, 3, 32, 32), torch.arange(2)))


def test_default_weights_are_the_published_fit():
    """The shipped weights are the ones benchmarks/kd_ranking.py fitted (cv.fit_all in its JSON)."""
    fit = json.loads(KD_JSON.read_text())["kd_fits"]["cv"]["fit_all"]
    assert (DEFAULT.zc, DEFAULT.w_zc, DEFAULT.w_diswot, DEFAULT.w_flops) == (
        fit["zc"], fit["w_zc"], fit["w_diswot"], fit["w_flops"])


def test_kd_is_the_default_proxy_of_image_searches_in_the_api_the_config_and_the_cli():
    """The README's first example, `searchkd search` and searchkd.search() agree (issue 22)."""
    from searchkd.api import default_proxy
    from searchkd.types import SearchConfig

    assert default_proxy("nb201", "evolution") == default_proxy("resnet_cifar", "random") == "kd"
    assert SearchConfig().proxy == "kd"
    assert default_proxy("bert-tiny", "evolution") == "superlm"
    import subprocess
    import sys

    help_text = subprocess.run([sys.executable, "-m", "searchkd", "search", "--help"], capture_output=True,
                               text=True, check=True).stdout
    assert "default: kd" in " ".join(help_text.split())
