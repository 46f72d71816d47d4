"""The step loop every ACM stage runs (resumable, seeded per step) and what the stages share:
named seed streams, the rows of a step, a classifier on pooled states. The lowest room of ACM's
training: :mod:`~searchkd.supernets.acm.train`, :mod:`~searchkd.supernets.acm.stage3` and
:mod:`~searchkd.supernets.acm.task` import it; it imports none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from searchkd.errors import SearchKDError, check_finite_loss, first_line
from searchkd.io import atomic_path
from searchkd.progress import Progress

__all__ = ["step_seed", "batch_rows", "pooled_logits", "meta_differences"]


def _run(name: str, model: nn.Module, params: dict[str, nn.Parameter], steps: int, lr: float,
         loss_fn: Callable[[int], torch.Tensor], *, config: Any, meta: dict[str, Any],
         ckpt: Path | None, progress: bool | None) -> list[float]:
    opt = torch.optim.Adam(list(params.values()), lr=lr)
    step, history = 0, []
    path = ckpt / f"{name}.pt" if ckpt is not None else None
    if path is not None and path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise SearchKDError(f"cannot read {path} ({first_line(e)}); remove it or use another --out") from None
        diff = meta_differences(state.get("meta"), meta)
        if diff:
            raise SearchKDError(f"{path} belongs to another base model, data or settings ({'; '.join(diff[:4])}); "
                                f"remove it to redo {name}, or use another --out")
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(state["params"][n])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])

    def save() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = atomic_path(path)
        torch.save({"meta": meta, "params": {n: p.detach().cpu() for n, p in params.items()},
                    "optimizer": opt.state_dict(), "step": step}, tmp)
        tmp.replace(path)

    with Progress(steps, f"acm {name}", enabled=progress) as bar:
        bar.moveto(step)
        while step < steps:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(step_seed(config.seed, name, step))
                loss = loss_fn(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
            opt.step()
            step += 1
            history.append(float(loss.detach()))
            check_finite_loss(history[-1], f"acm {name} step {step}")
            bar.moveto(step, loss=history[-1])
            if path is not None and config.checkpoint_every and step % config.checkpoint_every == 0:
                save()
    if path is not None:
        save()
    return history


def meta_differences(saved: Any, want: dict[str, Any]) -> list[str]:
    """``key old, now new`` for each key of ``want`` (its ``config`` key by key) that a
    checkpoint's ``saved`` meta holds otherwise; a key ``saved`` lacks reads as its
    :data:`~searchkd.supernets.acm.settings.LEGACY` value. What ``saved`` holds beyond ``want``
    is no difference: the settings a stage does not depend on, recorded when every stage's meta
    held the whole config."""
    from searchkd.supernets.acm.settings import LEGACY

    if not isinstance(saved, dict):
        return ["meta not recorded"]
    had_config = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    out = []
    for scope, have, wanted in (("", saved, {k: v for k, v in want.items() if k != "config"}),
                                ("config ", had_config, want.get("config", {}))):
        for k, v in wanted.items():
            old = have.get(k, LEGACY.get(k))
            if old != v:
                out.append(f"{scope}{k.replace('_', '-')} {old!r}, now {v!r}")
    return out


def step_seed(seed: int, name: str, step: int, draw: int = 0) -> int:
    """The seed of step ``step`` of stage ``name`` (``stage1``, ``stage2``, ``stage3-b0.5`` …):
    the ``"acm"`` stream of :mod:`searchkd.seeds`, refined by the name's CRC-32, the step and
    ``draw`` (0: the torch noise, 1: the batch)."""
    import zlib

    from searchkd.seeds import stream_seed

    return stream_seed(seed, "acm", zlib.crc32(name.encode()), step, draw)


def batch_rows(step: int, n: int, size: int, seed: int, name: str) -> torch.Tensor:
    """The rows (or tokens) of step ``step`` of stage ``name``: ``min(size, n)`` of ``n`` without
    replacement. Stage 3's batches are named ``stage3`` for every budget (and for the static
    baselines of the benchmarks): the same batches, different Gumbel noise."""
    rng = np.random.default_rng(step_seed(seed, name, step, 1))
    return torch.from_numpy(rng.choice(n, size=min(size, n), replace=False))


def _params(model: nn.Module, which: Callable[[str], bool]) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if which(n)}


def pooled_logits(model: nn.Module, head: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``head`` on the mean-pooled last hidden state of ``model`` (the classifier of a task)."""
    from searchkd.teachers.text import mean_pool

    return head(mean_pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask))
