"""The epoch loop of :mod:`searchkd.strategies.darts` and :mod:`~searchkd.strategies.sd_darts`
(private: the strategies are the interface). Imports torch."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import astuple
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from searchkd.distill.losses import kd_loss
from searchkd.errors import SearchKDError, check_finite_loss, first_line
from searchkd.io import append_jsonl, atomic_path, write_rows
import searchkd.trials as tlog
from searchkd.strategies._darts_base import CHECKPOINT, DartsOptions, _split, config_id, cosine_lr, data_id, write_alphas
from searchkd.supernets.nb201_supernet import NB201Supernet, frozen_stats, second_order_alpha_grad

__all__ = ["DartsLoop"]

EVAL_BATCH = 256


class DartsLoop:
    """One search: data, supernet, optimizers, optional teacher and snapshots, the checkpoint."""

    def __init__(self, config: Any, options: DartsOptions, out: Path, *, resume: bool = False) -> None:
        from searchkd.distill.train import Images
        from searchkd.devices import resolve_device
        from searchkd.seeds import stream_seed
        from searchkd.spaces import get_space

        self.config, self.o, self.out = config, options, out
        self.space = get_space("nb201")
        self.device = torch.device(resolve_device(config.device))
        train, val = _split(config)
        self.data_id = data_id(train, val)
        self.num_classes = max(train.num_classes, val.num_classes)
        # uint8 N×3×H×W on the device, augmented and normalised per batch
        self.train, self.val = (astuple(Images.from_set(part, self.device)) for part in (train, val))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(config.seed, "student"))
            self.model = NB201Supernet(self.num_classes, options.width, options.cells).to(self.device)
        # channels-last: ≈ 1.5–1.8× faster convolutions on a CPU (shared/REFERENCES.md), the same values
        self.model.to(memory_format=torch.channels_last)
        self.teacher = self._teacher()
        o = options
        self.w_opt = torch.optim.SGD(self.model.weights(), lr=o.w_lr, momentum=o.momentum, weight_decay=o.w_weight_decay,
                                     nesterov=o.nesterov)
        self.a_opt = torch.optim.Adam([self.model.alphas], lr=o.a_lr, betas=(0.5, 0.999), weight_decay=o.a_weight_decay)
        self.snapshots: deque[dict[str, torch.Tensor]] = deque(maxlen=o.sd_teachers)
        self.epoch, self.seconds = 0, 0.0
        self.records: list[dict[str, Any]] = []
        self.alphas: list[dict[str, Any]] = [self._alpha_row(0)]
        if resume and (out / CHECKPOINT).is_file():
            self._load(out / CHECKPOINT)

    # ---- pieces -------------------------------------------------------------------------------
    def _teacher(self) -> Any:
        if self.config.teacher is None:
            return None
        from searchkd.seeds import teacher_seed
        from searchkd.teachers import build_teacher

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(teacher_seed(self.config.seed))
            t = build_teacher(self.config.teacher, space="nb201", num_classes=self.num_classes,
                              weights=self.config.teacher_weights)
        t.to(self.device)
        if self.o.train_teacher:
            self._train_teacher(t, teacher_seed(self.config.seed))
        t.eval()
        for p in t.parameters():
            p.requires_grad_(False)
        return t

    def _train_teacher(self, t: Any, seed: int) -> None:
        """Train the teacher on the w half (searchkd's distillation trainer: SGD lr 0.1, cosine,
        crop and flip); kept in ``OUT/teacher/`` and reused when the search resumes."""
        from searchkd.distill.train import Images, TrainConfig, evaluate, train_model
        from searchkd.io import write_json

        meta = {"teacher": self.config.teacher, "data": self.data_id, "part": "w half"}
        rec = train_model(t, Images(self.train[0], self.train[1]),
                          config=TrainConfig(epochs=int(self.o.train_teacher), seed=seed),
                          ckpt_dir=self.out / "teacher", resume=True, meta=meta, progress=False,
                          label=f"teacher {self.config.teacher}")
        acc = evaluate(t, Images(self.val[0], self.val[1]))
        write_json(self.out / "teacher.json", {"teacher": self.config.teacher, "epochs": self.o.train_teacher,
                                               "trained_on": f"the w half ({len(self.train[1])} images)",
                                               "accuracy_on_alpha_half": acc, "seconds": rec.get("seconds")})

    def _alpha_row(self, epoch: int) -> dict[str, Any]:
        a = self.model.alphas.detach()
        return {"epoch": epoch, "alpha": a.cpu().tolist(), "weights": F.softmax(a, -1).cpu().tolist()}

    def _kd(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The teacher-guided term (zero without a teacher)."""
        if self.teacher is None or self.o.kd_weight == 0:
            return logits.new_zeros(())
        with torch.no_grad():
            t = self.teacher(x)
        return self.o.kd_weight * kd_loss(logits, t, y, self.o.kd_temperature, 1.0)

    def _sd(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """SD-DARTS's term toward the vote of the snapshots (zero before the first snapshot)."""
        if self.o.sd_weight == 0 or not self.snapshots:
            return logits.new_zeros(())
        from torch.func import functional_call

        from searchkd.strategies._darts_base import vote

        names = [n for n, _ in self.model.named_parameters()]
        # train mode (batch statistics), as the supernet itself; neither the snapshots' nor the
        # supernet's running statistics move
        with torch.no_grad(), frozen_stats(self.model):
            teachers = [functional_call(self.model, {n: snap[n] for n in names}, (x,)) for snap in self.snapshots]
            target = vote(teachers, self.o.sd_temperature, self.o.sd_voting)
        # kd_loss takes teacher logits: T·log p gives back p at temperature T
        return self.o.sd_weight * kd_loss(logits, self.o.sd_temperature * target, y, self.o.sd_temperature, 1.0)

    def _snapshot(self) -> None:
        if self.o.sd_weight == 0:
            return
        state = self.model.state_dict()
        if len(self.snapshots) == self.snapshots.maxlen:  # reuse the oldest one's memory
            old = self.snapshots.popleft()
            for k, v in state.items():
                old[k].copy_(v)
            self.snapshots.append(old)
        else:
            self.snapshots.append({k: v.detach().clone() for k, v in state.items()})

    def _w_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return F.cross_entropy(logits, y) + self._sd(logits, x, y) + self._kd(logits, x, y)

    def _a_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return F.cross_entropy(logits, y) + self._kd(logits, x, y)

    def _w_step(self, xt: torch.Tensor, yt: torch.Tensor) -> float:
        self.w_opt.zero_grad(set_to_none=True)
        loss = self._w_loss(xt, yt)
        weights = self.model.weights()
        loss.backward(inputs=weights)
        torch.nn.utils.clip_grad_norm_(weights, self.o.grad_clip)
        self.w_opt.step()
        return float(loss.detach())

    def _a_step(self, xv: torch.Tensor, yv: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor) -> None:
        m = self.model
        self.a_opt.zero_grad(set_to_none=True)
        if self.o.order == 2:
            g = self.w_opt.param_groups[0]
            weights = m.weights()
            grad, _ = second_order_alpha_grad(
                m, m.alphas, weights, lambda: self._w_loss(xt, yt), lambda: self._a_loss(xv, yv), lr=g["lr"],
                weight_decay=g["weight_decay"], momentum=g["momentum"],
                momentum_bufs=[self.w_opt.state.get(p, {}).get("momentum_buffer") for p in weights])
            m.alphas.grad = grad
        else:
            self._a_loss(xv, yv).backward(inputs=[m.alphas])
        self.a_opt.step()

    def step(self, xv: torch.Tensor, yv: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor) -> float:
        """One DARTS step on an α-half batch (``xv``) and a w-half batch (``xt``); the w loss.

        Order 1: w, then α at the new w (NB201's DARTS-V1). Order 2: α by the unrolled
        gradient, then w (NB201's DARTS-V2)."""
        if self.o.order == 2:
            self._a_step(xv, yv, xt, yt)
            return self._w_step(xt, yt)
        loss = self._w_step(xt, yt)
        self._a_step(xv, yv, xt, yt)
        return loss

    def batch(self, part: tuple[torch.Tensor, torch.Tensor], idx: torch.Tensor,
              gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``idx`` of a part, augmented from ``gen`` (None: as they are), normalised."""
        from searchkd.data.images import normalize
        from searchkd.distill.augment import random_crop_flip

        x = part[0][idx].float().div_(255)
        if gen is not None:
            x = random_crop_flip(x, gen)
        return normalize(x).contiguous(memory_format=torch.channels_last), part[1][idx]

    def batches(self, epoch: int) -> Any:
        """Epoch ``epoch``'s steps: ``(xv, yv, xt, yt)``, orders and augmentation from ``(seed, epoch)``."""
        b = int(self.config.batch_size)
        n_t, n_v = len(self.train[1]), len(self.val[1])
        rng = np.random.default_rng([int(self.config.seed), 201, epoch])
        pt = torch.from_numpy(rng.permutation(n_t)).to(self.device)
        pv = torch.from_numpy(rng.permutation(n_v)).to(self.device)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62))) if self.o.augment else None
        for s in range(min(n_t, n_v) // b):
            xt, yt = self.batch(self.train, pt[s * b:(s + 1) * b], gen)
            xv, yv = self.batch(self.val, pv[s * b:(s + 1) * b], gen)
            yield xv, yv, xt, yt

    @torch.no_grad()
    def evaluate(self, hard: list[int] | None = None) -> tuple[float, float]:
        """(accuracy %, mean cross-entropy) on the un-augmented α half in eval mode (NB201's
        ``valid_func``): the supernet, or with ``hard`` the derived network with its weights."""
        n = len(self.val[1])
        correct, loss = 0, 0.0
        was = self.model.training
        self.model.eval()
        for a in range(0, n, EVAL_BATCH):
            x, y = self.batch(self.val, torch.arange(a, min(a + EVAL_BATCH, n), device=self.device), None)
            logits = self.model(x, hard)
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        self.model.train(was)
        return 100.0 * correct / n, loss / n

    def val_loss(self, n: int = EVAL_BATCH) -> Callable[[], torch.Tensor]:
        """A closure: the supernet's cross-entropy on the first ``n`` un-augmented α-half images, in
        train mode (as α is trained) with the running statistics left alone (for
        :func:`~searchkd.supernets.nb201_supernet.dominant_eigenvalue`)."""
        x, y = self.batch(self.val, torch.arange(min(n, len(self.val[1])), device=self.device), None)

        def loss() -> torch.Tensor:
            with frozen_stats(self.model):
                return F.cross_entropy(self.model(x), y)

        return loss

    # ---- the loop -----------------------------------------------------------------------------
    def run(self, progress: bool | None = None, callback: Callable[[int, "DartsLoop"], None] | None = None) -> dict[str, Any]:
        from searchkd.progress import Progress

        cfg, o = self.config, self.o
        epochs, b = int(cfg.budget), int(cfg.batch_size)
        self._rewrite_log()
        steps = min(len(self.train[1]), len(self.val[1])) // b
        bar = Progress(epochs, cfg.strategy, enabled=progress)
        bar.moveto(self.epoch)
        self.model.train()
        while self.epoch < epochs:
            t0 = time.perf_counter()
            lr = cosine_lr(self.epoch, epochs, o.w_lr, o.w_lr_min)
            for g in self.w_opt.param_groups:
                g["lr"] = lr
            total = 0.0
            for s, (xv, yv, xt, yt) in enumerate(self.batches(self.epoch)):
                total += self.step(xv, yv, xt, yt)
                check_finite_loss(total, f"{cfg.strategy} epoch {self.epoch + 1} step {s + 1}")
                if o.sd_interval and (self.epoch * steps + s + 1) % o.sd_interval == 0:
                    self._snapshot()
            if not o.sd_interval:  # one snapshot per epoch: the teachers are the previous epochs' supernets
                self._snapshot()
            cell = self.model.derive()
            sup_acc, sup_loss = self.evaluate()
            der_acc, _ = self.evaluate(self.space.encode(cell))
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            self.epoch += 1
            self.seconds += seconds
            cost = self.space.cost(cell)
            self.records.append({"i": self.epoch - 1, "arch": cell, "scores": {
                "derived_acc": der_acc, "supernet_acc": sup_acc, "val_loss": sup_loss, "train_loss": total / max(steps, 1)},
                "params": cost["params"], "flops": cost["flops"], "seconds": seconds, "epoch": self.epoch, "lr": lr,
                "alpha_softmax": F.softmax(self.model.alphas.detach(), -1).cpu().tolist()})
            self.alphas.append(self._alpha_row(self.epoch))
            self._save(self.out / CHECKPOINT)  # first: a record is never logged ahead of its checkpoint
            append_jsonl(self.out / tlog.TRIALS, [self.records[-1]])
            write_alphas(self.alphas, self.out, f"{cfg.strategy} on nb201 (C={o.width}, N={o.cells}), seed {cfg.seed}")
            bar.moveto(self.epoch, cell=cell, derived=round(der_acc, 2), supernet=round(sup_acc, 2))
            if callback is not None:
                callback(self.epoch, self)
        bar.close()
        write_alphas(self.alphas, self.out, f"{cfg.strategy} on nb201 (C={o.width}, N={o.cells}), seed {cfg.seed}")
        return {"epochs": self.epoch, "seconds": self.seconds, "arch": self.model.derive()}

    # ---- checkpoints --------------------------------------------------------------------------
    def _rewrite_log(self) -> None:
        """``trials.jsonl`` as the checkpoint has it (a kill may have left it a record short, or torn)."""
        write_rows(self.out / tlog.TRIALS, self.records)

    def _save(self, path: Path) -> None:
        state = {"model": self.model.state_dict(), "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
                 "snapshots": list(self.snapshots), "epoch": self.epoch, "seconds": self.seconds,
                 "records": json.dumps(self.records), "alphas": json.dumps(self.alphas),
                 "config": config_id(self.config), "data": self.data_id}
        tmp = atomic_path(path)
        torch.save(state, tmp)
        tmp.replace(path)

    def _load(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:  # a truncated or foreign file
            raise SearchKDError(f"cannot read {path} ({first_line(e)}); search into another --out") from None
        if state.get("config") != config_id(self.config):
            raise SearchKDError(f"{path} belongs to a search with another config; resume with the same settings or use another --out")
        if state.get("data") != self.data_id:
            raise SearchKDError(f"{path} was trained on other images (--data or its train/val split differs); use another --out")
        self.model.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.snapshots.clear()
        self.snapshots.extend(state["snapshots"])
        self.epoch, self.seconds = int(state["epoch"]), float(state["seconds"])
        self.records, self.alphas = json.loads(state["records"]), json.loads(state["alphas"])

