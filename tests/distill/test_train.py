"""The trainer: an optimisation step lowers the loss; resuming reproduces the uninterrupted run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from searchkd.distill.losses import kd_loss
from searchkd.distill.train import Images, TrainConfig, evaluate, train_model
from searchkd.errors import SearchKDError
from searchkd.spaces import get_space

SPACE = get_space("resnet_cifar")


def _net(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return SPACE.build(arch, num_classes=4)


def _images(n: int = 48, seed: int = 0) -> Images:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    y = np.arange(n) % 4
    x[y == 1, :, :, 0] = 255  # a learnable signal
    return Images(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y.astype(np.int64)))


def _learnable(n: int, seed: int) -> Images:
    """4 classes told apart by colour under noise: class c > 0 brightens channel c - 1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.integers(0, 128, size=(n, 8, 8, 3), dtype=np.uint8)
    for c in range(1, 4):
        x[y == c, :, :, c - 1] += 127
    return Images(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y.astype(np.int64)))


def test_one_sgd_step_lowers_the_kd_loss_on_a_fixed_batch() -> None:
    student, teacher = _net("1-1-1", 0), _net("1-2-1", 1).eval()
    data = _images(16)
    x = data.x.float() / 255
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def loss() -> torch.Tensor:
        with torch.no_grad():
            t = teacher(x)
        return kd_loss(student(x), t, data.y)

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert loss().item() < before.item()


def _cfg(**kw: object) -> TrainConfig:
    base = dict(epochs=3, batch_size=16, lr=0.05, seed=3, feature_losses=(("sp", 10.0), ("ickd", 1.0)))
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


class _Kill(Exception):
    pass


def test_resume_from_an_epoch_checkpoint_reproduces_the_uninterrupted_weights(tmp_path) -> None:
    data, held = _images(40), _images(16, seed=1)
    teacher = _net("1-2-1", 7)
    full = _net("1-1-1")
    rec_full = train_model(full, data, config=_cfg(), teacher=teacher, held_out=held, ckpt_dir=tmp_path / "a",
                           meta={"arch": "1-1-1"}, progress=False)

    def kill_after_epoch_1(r: dict) -> None:
        if r["epoch"] == 1:
            raise _Kill

    with pytest.raises(_Kill):
        train_model(_net("1-1-1"), data, config=_cfg(), teacher=teacher, held_out=held, ckpt_dir=tmp_path / "b",
                    meta={"arch": "1-1-1"}, progress=kill_after_epoch_1)
    resumed = _net("1-1-1", seed=99)  # the checkpoint, not the init, decides
    rec = train_model(resumed, data, config=_cfg(), teacher=teacher, held_out=held, ckpt_dir=tmp_path / "b",
                      resume=True, meta={"arch": "1-1-1"}, progress=False)
    assert rec["resumed_from"] == 1
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    assert rec["accuracy"] == rec_full["accuracy"]
    assert [h["loss"] for h in rec["history"]] == [h["loss"] for h in rec_full["history"]]

    # a finished run is reused as is; other settings refuse the checkpoint
    again = train_model(_net("1-1-1", 5), data, config=_cfg(), teacher=teacher, held_out=held,
                        ckpt_dir=tmp_path / "b", resume=True, meta={"arch": "1-1-1"}, progress=False)
    assert again["cached"] and again["accuracy"] == rec_full["accuracy"]
    (tmp_path / "b" / "final.json").unlink()
    with pytest.raises(SearchKDError, match="other settings"):
        train_model(_net("1-1-1"), data, config=_cfg(lr=0.01), teacher=teacher, ckpt_dir=tmp_path / "b",
                    resume=True, meta={"arch": "1-1-1"}, progress=False)


def test_training_learns_and_reports_per_epoch(tmp_path) -> None:
    data, held, seen = _learnable(64, 0), _learnable(64, 1), []
    net = _net("1-1-1")
    before = evaluate(net, held)
    rec = train_model(net, data, config=TrainConfig(epochs=3, batch_size=16, lr=0.05), held_out=held,
                      ckpt_dir=tmp_path, progress=seen.append, label="x")
    assert [r["epoch"] for r in seen] == [1, 2, 3] and seen[0]["label"] == "x"
    losses = [r["loss"] for r in rec["history"]]
    assert losses[0] > losses[1] > losses[2] and losses[2] < 0.5 * losses[0]
    # images it never saw: from chance (25 %) to well above it
    assert before <= 50.0 and rec["accuracy"] >= 75.0
    assert rec["accuracy"] == evaluate(net, held)
    assert json.loads((tmp_path / "final.json").read_text())["epochs"] == 3
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "generator", "torch_rng", "epoch"} <= set(state)


@pytest.mark.parametrize("space, arch", [
    ("resnet_cifar", "1-1-1"),
    ("nb201", "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"),
])
def test_every_image_space_distils_with_feature_losses(space: str, arch: str) -> None:
    sp = get_space(space)
    torch.manual_seed(0)
    student, teacher = sp.build(arch, num_classes=4), _net("1-1-1", 1)
    data = _images(16)
    rec = train_model(student, data, config=TrainConfig(epochs=1, batch_size=8, feature_losses=(("sp", 1.0), ("ickd", 1.0))),
                      teacher=teacher, held_out=data, progress=False)
    assert rec["accuracy"] == evaluate(student, data) and rec["history"][0]["loss"] > 0


@pytest.mark.parametrize("kw", [{"epochs": 0}, {"epochs": -1}, {"batch_size": 1}, {"kd_weight": 1.5},
                                {"temperature": 0.0}, {"lr": 0.0}])
def test_bad_training_settings(kw: dict) -> None:
    with pytest.raises(SearchKDError):
        TrainConfig(**{"epochs": 1, **kw})  # type: ignore[arg-type]



def test_learning_rate_warms_up_then_follows_the_cosine() -> None:
    import math

    from searchkd.distill.train import _lr_factor

    total, warm = 100, 10
    assert _lr_factor(0, warm=warm, total=total) == pytest.approx(0.1 * 0.5 * (1 + math.cos(0)))
    assert _lr_factor(4, warm=warm, total=total) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 4 / 100)))
    assert _lr_factor(50, warm=warm, total=total) == pytest.approx(0.5)
    assert _lr_factor(100, warm=warm, total=total) == pytest.approx(0.0, abs=1e-12)
    assert _lr_factor(3, warm=0, total=total) == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 100)))
