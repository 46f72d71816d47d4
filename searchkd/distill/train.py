"""Training one network, with or without a teacher: the loop the verification relies on.

SGD (momentum 0.9, Nesterov, weight decay 5e-4) with a short linear warm-up, then a per-step cosine schedule to zero,
batch-wise random crop + flip (:mod:`searchkd.distill.augment`) from a seeded generator,
and the KD objective of :mod:`searchkd.distill.losses` when a teacher is given. On CUDA it
trains in bf16 autocast with channels-last tensors. After every epoch it writes a
checkpoint (model, feature-loss modules, optimizer, scheduler, generator and RNG states,
epoch) so that ``resume=True`` continues a killed run; on the CPU the resumed run's weights
equal the uninterrupted run's bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from searchkd.distill.augment import random_crop_flip
from searchkd.distill.losses import ICKD, ickd_loss, kd_loss, sp_loss
from searchkd.errors import SearchKDError
from searchkd.io import write_json

__all__ = ["TrainConfig", "Images", "train_model", "evaluate"]


@dataclass(frozen=True)
class TrainConfig:
    """How one network is trained. ``kd_weight`` and ``temperature`` only matter with a teacher."""

    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    temperature: float = 4.0
    kd_weight: float = 0.9
    feature_losses: tuple[tuple[str, float], ...] = ()
    seed: int = 0
    #: linear learning-rate warm-up, as a fraction of all steps (at most one epoch): deep
    #: CIFAR ResNets diverge at lr 0.1 from the first step (He et al. 2016 warm ResNet-110
    #: up at 0.01; Goyal et al. 2017 ramp linearly)
    warmup: float = 0.1
    #: zero padding of the random crop; 4 is the 32-pixel CIFAR recipe, scale it with the image
    padding: int = 4

    def __post_init__(self) -> None:
        if not (isinstance(self.epochs, int) and self.epochs > 0):
            raise SearchKDError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 2):
            raise SearchKDError(f"batch size must be an integer ≥ 2, got {self.batch_size!r}")
        if not self.lr > 0:
            raise SearchKDError(f"learning rate must be positive, got {self.lr}")
        if not 0.0 <= self.kd_weight <= 1.0:
            raise SearchKDError(f"KD weight must be in [0, 1], got {self.kd_weight}")
        if not self.temperature > 0:
            raise SearchKDError(f"temperature must be positive, got {self.temperature}")
        if not (isinstance(self.padding, int) and self.padding >= 0):
            raise SearchKDError(f"crop padding must be an integer ≥ 0, got {self.padding!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["feature_losses"] = {k: v for k, v in self.feature_losses}
        return d


@dataclass
class Images:
    """A labelled image set as tensors on one device: uint8 N×3×H×W and int64 labels."""

    x: torch.Tensor
    y: torch.Tensor

    @classmethod
    def from_set(cls, images: Any, device: Any = "cpu") -> "Images":
        x = torch.from_numpy(np.ascontiguousarray(images.x)).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(np.asarray(images.y, dtype=np.int64))
        return cls(x.to(device), y.to(device))

    def __len__(self) -> int:
        return len(self.y)


def _prepare(x_uint8: torch.Tensor, gen: torch.Generator | None, channels_last: bool,
             padding: int = 4) -> torch.Tensor:
    from searchkd.data.images import normalize

    x = x_uint8.float().div_(255)
    if gen is not None:
        x = random_crop_flip(x, gen, padding=padding)
    x = normalize(x)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _autocast(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def evaluate(model: nn.Module, data: Images, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent, eval mode, no augmentation."""
    device = data.x.device
    was = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        for i in range(0, len(data), batch_size):
            with _autocast(device):
                logits = model(_prepare(data.x[i:i + batch_size], None, device.type == "cuda"))
            correct += (logits.argmax(1) == data.y[i:i + batch_size]).sum()
    finally:
        model.train(was)
    return 100.0 * correct.item() / max(len(data), 1)


def _feature_modules(model: nn.Module, teacher: nn.Module | None, config: TrainConfig, sample: torch.Tensor) -> nn.ModuleDict:
    mods = nn.ModuleDict()
    if teacher is None or not config.feature_losses:
        return mods
    names = dict(config.feature_losses)
    if "ickd" in names:
        with torch.no_grad():
            was = model.training
            model.eval()
            c_s = model.forward_features(sample).shape[1]
            model.train(was)
            c_t = teacher.forward_features(sample).shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            mods["ickd"] = ICKD(c_s, c_t)
    return mods


def _lr_factor(step: int, *, warm: int, total: int) -> float:
    """Linear warm-up over ``warm`` steps, then cosine to zero at ``total``."""
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    return cosine * min(1.0, (step + 1) / warm) if warm else cosine


def _steps_per_epoch(n: int, batch_size: int) -> list[tuple[int, int]]:
    # A trailing batch of one image would break BatchNorm in train mode: fold it into the previous.
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < 2:
        bounds[-2] = (bounds[-2][0], n)
        bounds.pop()
    return bounds


class _Progress:
    """A callback per epoch, and searchkd's one bar (:class:`searchkd.progress.Progress`,
    only on a terminal) with a line per finished epoch."""

    def __init__(self, progress: Any, label: str, epochs: int, steps: int) -> None:
        from searchkd.progress import Progress

        self.callback = progress if callable(progress) else None
        self.label, self.epochs = label, epochs
        self.bar = Progress(steps, label, enabled=False if progress is False else None)

    def step(self, epoch: int, i: int, loss: Callable[[], float]) -> None:
        if self.bar.enabled:  # loss() syncs the device: only when drawn
            self.bar.desc = f"{self.label} epoch {epoch}/{self.epochs}"
            self.bar.moveto(i + 1, loss=loss())

    def epoch_end(self, record: dict[str, Any]) -> None:
        if self.callback is not None:
            self.callback({"label": self.label, **record})
        self.bar.line(f"{self.label} epoch {record['epoch']}/{self.epochs} loss {record['loss']:.3f} "
                      f"train {record['train_acc']:.1f}% {record['seconds']:.1f}s")
        self.bar.n = 0


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_model(model: nn.Module, train: Images, *, config: TrainConfig, teacher: nn.Module | None = None,
                held_out: Images | None = None, ckpt_dir: str | Path | None = None, resume: bool = False,
                meta: dict[str, Any] | None = None, progress: Any = None, label: str = "") -> dict[str, Any]:
    """Train ``model`` in place on ``train`` (tensors already on the training device).

    Args:
        model: a network with ``forward_features``/``forward_head`` (feature losses need them).
        teacher: distil from it (kept in eval mode, never updated); None → cross-entropy only.
        held_out: where the final accuracy is measured (never trained on).
        ckpt_dir: ``last.pt`` after every epoch and ``final.json`` at the end go here.
        resume: continue from ``ckpt_dir/last.pt``, or reuse a finished run, when its
            ``meta`` (the settings that decide the weights) equals this one's.
        progress: True (lines on stderr), None (lines only on a terminal), False, or a
            callable that gets one dict per epoch.

    Returns:
        ``accuracy`` (held-out top-1 %, or None), ``epochs``, ``seconds`` (training time,
        summed over resumed parts), ``images_per_s``, ``history`` (per-epoch loss and train
        accuracy), ``resumed_from`` (the epoch a checkpoint gave, 0 for a fresh run).
    """
    device = train.x.device
    cuda = device.type == "cuda"
    # The settings that decide the weights; a checkpoint is only reused when they are equal.
    meta_json = json.dumps({"meta": meta or {}, "train": config.to_dict()}, sort_keys=True, default=str)
    ckpt = Path(ckpt_dir) if ckpt_dir is not None else None
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
        if resume and (ckpt / "final.json").is_file() and (ckpt / "last.pt").is_file():
            rec = json.loads((ckpt / "final.json").read_text())
            if rec.get("meta") == meta_json:
                state = torch.load(ckpt / "last.pt", map_location=device, weights_only=True)
                model.load_state_dict(state["model"])
                return {**{k: v for k, v in rec.items() if k != "meta"}, "cached": True}

    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    if teacher is not None:
        teacher.to(device).eval()
        if cuda:
            teacher.to(memory_format=torch.channels_last)
        for p in teacher.parameters():
            p.requires_grad_(False)
    extra = _feature_modules(model, teacher, config, _prepare(train.x[:2], None, cuda)).to(device)
    params = list(model.parameters()) + list(extra.parameters())
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=True,
                          weight_decay=config.weight_decay)
    bounds = _steps_per_epoch(len(train), config.batch_size)
    total = config.epochs * len(bounds)
    warm = max(1, min(len(bounds), int(config.warmup * total))) if config.warmup > 0 else 0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(_lr_factor, warm=warm, total=total))
    gen = torch.Generator().manual_seed(config.seed)
    start, seconds, history = 0, 0.0, []

    if resume and ckpt is not None and (ckpt / "last.pt").is_file():
        state = torch.load(ckpt / "last.pt", map_location="cpu", weights_only=True)
        if state.get("meta") != meta_json:
            raise SearchKDError(f"checkpoint {ckpt / 'last.pt'} was made with other settings; "
                                "remove it or run without resume")
        model.load_state_dict(state["model"])
        extra.load_state_dict(state["extra"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if cuda and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        start, seconds = int(state["epoch"]), float(state["seconds"])
        history = json.loads(state["history"])
    resumed_from = start

    bar = _Progress(progress, label, config.epochs, len(bounds))
    feats = dict(config.feature_losses) if teacher is not None else {}
    need_feats = bool(feats)
    model.train()
    extra.train()
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(train), generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for i, (a, b) in enumerate(bounds):
            idx = perm[a:b]
            x = _prepare(train.x[idx], gen, cuda, config.padding)
            y = train.y[idx]
            with _autocast(device):
                if need_feats:
                    f_s = model.forward_features(x)
                    logits = model.forward_head(f_s)
                else:
                    logits = model(x)
                t_logits = None
                if teacher is not None:
                    with torch.no_grad():
                        f_t = teacher.forward_features(x)
                        t_logits = teacher.forward_head(f_t)
            loss = kd_loss(logits, t_logits, y, config.temperature, config.kd_weight)
            if "sp" in feats:
                loss = loss + feats["sp"] * sp_loss(f_s, f_t)
            if "ickd" in feats:
                with _autocast(device):
                    emb = extra["ickd"].embed(f_s)
                loss = loss + feats["ickd"] * ickd_loss(emb, f_t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * (b - a)
            correct += (logits.detach().argmax(1) == y).sum()
            bar.step(epoch + 1, i, lambda: float(loss.detach()))
        if cuda:
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": loss_sum.item() / len(train),
                  "train_acc": 100.0 * correct.item() / len(train), "seconds": seconds}
        if not math.isfinite(record["loss"]):
            raise FloatingPointError(f"{label}: training diverged (loss {record['loss']}) in epoch {epoch + 1}")
        history.append(record)
        if ckpt is not None:
            _save_atomic({"model": model.state_dict(), "extra": extra.state_dict(), "optimizer": opt.state_dict(),
                          "scheduler": sched.state_dict(), "generator": gen.get_state(),
                          "torch_rng": torch.get_rng_state(),
                          "cuda_rng": torch.cuda.get_rng_state() if cuda else None,
                          "epoch": epoch + 1, "seconds": seconds, "history": json.dumps(history),
                          "meta": meta_json}, ckpt / "last.pt")
        bar.epoch_end(record)

    acc = evaluate(model, held_out) if held_out is not None else None
    images = len(train) * (config.epochs - resumed_from)
    done_seconds = seconds - (history[resumed_from - 1]["seconds"] if resumed_from else 0.0)
    out = {"accuracy": acc, "epochs": config.epochs, "seconds": seconds,
           "images_per_s": images / done_seconds if done_seconds > 0 else None,
           "history": history, "resumed_from": resumed_from}
    if ckpt is not None:
        write_json(ckpt / "final.json", {**out, "meta": meta_json}, indent=1)
    return out
