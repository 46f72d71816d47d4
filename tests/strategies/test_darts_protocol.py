"""darts / sd-darts follow NAS-Bench-201's protocol: optimisers, update order, schedule,
augmentation of both halves, DARTS-V2, the trained teacher, training images by default."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from tests.conftest import shared_file  # noqa: E402
from _darts_tiny import A_BETAS, A_DECAY, A_LR, TINY, TINY_FLAGS, W_DECAY, W_MOMENTUM, make_loop  # noqa: E402
from searchkd.cli import main  # noqa: E402
from searchkd.orchestrate import run_search  # noqa: E402
from searchkd.strategies._darts_loop import DartsLoop  # noqa: E402
from searchkd.supernets.nb201_supernet import second_order_alpha_grad  # noqa: E402

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"  # the project's ../shared/data
TRAIN_FILE = SHARED / "images" / "cifar10_train_25k.npz"
TEST_FILE = SHARED / "images" / "cifar10_test_1000.npz"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


def test_optimisers_have_nb201s_settings(tmp_path):
    loop = make_loop(tmp_path)
    g = loop.w_opt.param_groups[0]
    assert isinstance(loop.w_opt, torch.optim.SGD) and g["nesterov"] is True
    assert (g["lr"], g["momentum"], g["weight_decay"]) == (0.025, W_MOMENTUM, W_DECAY)
    a = loop.a_opt.param_groups[0]
    assert isinstance(loop.a_opt, torch.optim.Adam)
    assert (a["lr"], a["betas"], a["weight_decay"]) == (A_LR, A_BETAS, A_DECAY)
    assert a["params"] == [loop.model.alphas] and all(p is not loop.model.alphas for p in g["params"])


def test_learning_rate_is_nb201s_cosine_indexed_by_the_epoch(tmp_path, monkeypatch):
    """NB201's CosineAnnealingLR: 0.001 + ½(0.025 − 0.001)(1 + cos(π e / E)) for epoch e, the same
    at every step of the epoch (its per-step update reads only the epoch)."""
    seen = []
    step = DartsLoop.step

    def spy(self, *a):
        seen.append((self.epoch, self.w_opt.param_groups[0]["lr"]))
        return step(self, *a)

    monkeypatch.setattr(DartsLoop, "step", spy)
    run_search({**TINY, "strategy": "darts", "budget": 3}, tmp_path / "s")
    want = [0.001 + 0.5 * 0.024 * (1 + math.cos(math.pi * e / 3)) for e in range(3)]
    n = len(seen) // 3  # steps per epoch
    assert n >= 2 and [e for e, _ in seen] == [e for e in range(3) for _ in range(n)]
    assert [lr for _, lr in seen] == pytest.approx([w for w in want for _ in range(n)], rel=1e-12)
    recs = [__import__("json").loads(x) for x in (tmp_path / "s" / "trials.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in recs] == pytest.approx(want, rel=1e-12)


def _denormalise(x):
    from searchkd.data.images import CIFAR_MEAN, CIFAR_STD

    return x * torch.tensor(CIFAR_STD).view(1, 3, 1, 1) + torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)


def _is_crop_flip_of(aug, raw, pad=4):
    """Some 4-pixel-padded crop of ``raw`` (3×H×W in [0, 1]), mirrored or not, equals ``aug``."""
    h, w = raw.shape[1:]
    p = F.pad(raw, (pad, pad, pad, pad))
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            c = p[:, dy:dy + h, dx:dx + w]
            if torch.allclose(c, aug, atol=1e-5) or torch.allclose(c.flip(2), aug, atol=1e-5):
                return True
    return False


def test_both_halves_get_crop_and_flip(tmp_path):
    plain = make_loop(tmp_path / "a", augment=False)
    aug = make_loop(tmp_path / "b")
    for (xv0, yv0, xt0, yt0), (xv1, yv1, xt1, yt1) in zip(plain.batches(0), aug.batches(0)):
        assert torch.equal(yv0, yv1) and torch.equal(yt0, yt1)  # the same images, in the same order
        for x0, x1 in ((xt0, xt1), (xv0, xv1)):  # the w half, then the α half
            r0, r1 = _denormalise(x0), _denormalise(x1)
            assert all(_is_crop_flip_of(r1[i], r0[i]) for i in range(len(r0)))
            assert sum(not torch.allclose(r1[i], r0[i], atol=1e-5) for i in range(len(r0))) > len(r0) // 2
    # evaluation sees the α half as it is
    x, _ = aug.batch(aug.val, torch.arange(4), None)
    assert torch.allclose(_denormalise(x), aug.val[0][:4].float() / 255, atol=1e-5)


def test_order_2_moves_alpha_first_by_the_unrolled_gradient(tmp_path):
    loop = make_loop(tmp_path, order=2)
    xv, yv, xt, yt = next(loop.batches(0))
    m = copy.deepcopy(loop.model)
    a0 = m.alphas.detach().clone()
    want, _ = second_order_alpha_grad(m, m.alphas, m.weights(), lambda: F.cross_entropy(m(xt), yt),
                                      lambda: F.cross_entropy(m(xv), yv), lr=0.025, weight_decay=W_DECAY,
                                      momentum=W_MOMENTUM, momentum_bufs=[None] * len(m.weights()))
    want = want + A_DECAY * a0
    # then w, on the w batch, at the new α
    with torch.no_grad():
        m.alphas.sub_(A_LR * want / (want.abs() + 1e-8))
    ws = m.weights()
    g = torch.autograd.grad(F.cross_entropy(m(xt), yt), ws)
    scale = min(1.0, 5.0 / (float(torch.sqrt(sum((gi ** 2).sum() for gi in g))) + 1e-6))
    loop.step(xv, yv, xt, yt)
    assert torch.allclose(loop.a_opt.state[loop.model.alphas]["exp_avg"], 0.5 * want, rtol=1e-4, atol=1e-9)
    assert torch.allclose(loop.model.alphas, m.alphas, atol=1e-7)
    for got, w, gi in zip(loop.model.weights(), ws, g):
        d = gi * scale + W_DECAY * w
        assert torch.allclose(got.detach(), w.detach() - 0.025 * (d + W_MOMENTUM * d), rtol=1e-4, atol=1e-6)


def test_order_2_search_runs_and_resumes(tmp_path):
    cfg = {**TINY, "strategy": "darts", "budget": 2, "options": {**TINY["options"], "order": 2}}
    a = run_search(cfg, tmp_path / "a")
    assert a.config["options"]["order"] == 2
    b = run_search({**cfg, "budget": 2}, tmp_path / "a", resume=True)
    assert b.best.arch == a.best.arch


def test_train_teacher_trains_it_on_the_w_half_and_resume_reuses_it(tmp_path):
    import json

    from searchkd.seeds import teacher_seed
    from searchkd.teachers import build_teacher

    loop = make_loop(tmp_path, teacher="resnet_cifar:1-1-1", train_teacher=2)
    torch.manual_seed(teacher_seed(0))
    fresh = build_teacher("resnet_cifar:1-1-1", space="nb201", num_classes=loop.num_classes)
    assert any(not torch.equal(p, q) for p, q in zip(loop.teacher.state_dict().values(), fresh.state_dict().values()))
    assert not loop.teacher.training and not any(p.requires_grad for p in loop.teacher.parameters())
    info = json.loads((tmp_path / "teacher.json").read_text())
    assert info["epochs"] == 2 and str(len(loop.train[1])) in info["trained_on"]
    again = make_loop(tmp_path, teacher="resnet_cifar:1-1-1", train_teacher=2)
    assert all(torch.equal(p, q) for p, q in zip(loop.teacher.state_dict().values(), again.teacher.state_dict().values()))


def test_the_default_data_of_a_differentiable_search_is_the_training_file():
    shared_file("images/cifar10_train_25k.npz")  # absent: a skip here, a failure under CI
    from searchkd.api import default_data

    kind, _, path = default_data("nb201", "darts").partition(":")
    assert kind == "npz" and Path(path).resolve() == TRAIN_FILE.resolve()
    assert default_data("nb201", "sd-darts") == default_data("nb201", "darts")
    assert default_data("nb201", "evolution") == "embedded"


def test_searching_on_the_shared_test_images_is_a_one_line_warning(tmp_path, capsys):
    shared_file("images/cifar10_test_1000.npz")
    flags = [f"npz:{TEST_FILE}" if f == "embedded" else f for f in TINY_FLAGS]
    assert main(["search", "--space", "nb201", "--strategy", "darts", "--budget", "1", *flags,
                 "--out", str(tmp_path / "t")]) == 0
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("searchkd: warning:") and "test images" in err[0], err
    assert main(["search", "--space", "nb201", "--strategy", "darts", "--budget", "1", *TINY_FLAGS,
                 "--out", str(tmp_path / "e")]) == 0
    assert capsys.readouterr().err.strip() == ""
