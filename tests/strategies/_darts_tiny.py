"""Shared by the darts tests: a tiny search config and an independent computation of one
DARTS step with NAS-Bench-201's settings (the hand check the loop is compared with)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

# a tiny search: 192 digits split 96/96, batches of 32 (3 steps an epoch), C=4, N=1
TINY = {"space": "nb201", "proxy": "derived_acc", "data": "embedded", "batch_size": 32, "device": "cpu",
        "options": {"width": 4, "cells": 1, "images": 192}}
TINY_FLAGS = ["--data", "embedded", "--batch-size", "32", "--device", "cpu", "--supernet-width", "4",
              "--supernet-cells", "1", "--images", "192", "--quiet"]

# NAS-Bench-201's DARTS settings, written out here rather than read from the code under test
W_MOMENTUM, W_DECAY, CLIP = 0.9, 5e-4, 5.0
A_LR, A_BETAS, A_DECAY = 3e-4, (0.5, 0.999), 1e-3


def make_loop(out: Path, strategy: str = "darts", budget: int = 2, teacher: str | None = None, **options: Any) -> Any:
    from searchkd.orchestrate.driver import prepare
    from searchkd.strategies._darts_loop import DartsLoop

    cfg = {**TINY, "strategy": strategy, "budget": budget, "options": {**TINY["options"], **options}}
    if teacher is not None:
        cfg["teacher"] = teacher
    plan = prepare(cfg)
    out.mkdir(parents=True, exist_ok=True)
    return DartsLoop(plan.config, plan.strategy_cls.options(plan.config), out)


def kd_term(logits: torch.Tensor, teacher_logits: torch.Tensor, weight: float, t: float) -> torch.Tensor:
    """weight · T² · KL(p_teacher ‖ p_student) at temperature T, averaged over the batch."""
    pt = F.softmax(teacher_logits / t, 1)
    return weight * t * t * (pt * (F.log_softmax(teacher_logits / t, 1) - F.log_softmax(logits / t, 1))).sum(1).mean()


def hand_step(loop: Any, xv: torch.Tensor, yv: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor,
              teacher: Any = None) -> dict[str, Any]:
    """The first order-1 step from ``loop``'s current state, on a copy of its supernet: w by one
    SGD step (Nesterov, first step: buf = d, update d + momentum·d; clip 5; weight decay 5e-4)
    on the w batch, then α by one Adam step on the α batch at the new w."""
    m = copy.deepcopy(loop.model)
    o = loop.o
    lr = loop.w_opt.param_groups[0]["lr"]

    def extra(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if teacher is None:
            return logits.new_zeros(())
        with torch.no_grad():
            t = teacher(x)
        return kd_term(logits, t, o.kd_weight, o.kd_temperature)

    ws = m.weights()
    logits = m(xt)
    g = torch.autograd.grad(F.cross_entropy(logits, yt) + extra(logits, xt), ws)
    norm = torch.sqrt(sum((gi.double() ** 2).sum() for gi in g))
    scale = min(1.0, CLIP / (float(norm) + 1e-6))
    with torch.no_grad():
        for w, gi in zip(ws, g):
            d = gi * scale + W_DECAY * w
            w.sub_(lr * (d + W_MOMENTUM * d))
    a0 = m.alphas.detach().clone()
    logits = m(xv)
    (ga,) = torch.autograd.grad(F.cross_entropy(logits, yv) + extra(logits, xv), m.alphas)
    ga = ga + A_DECAY * a0
    # Adam's first step: m̂ = g, v̂ = g², so α moves by lr·g/(|g| + eps)
    return {"weights": [w.detach() for w in ws], "alpha": a0 - A_LR * ga / (ga.abs() + 1e-8),
            "exp_avg": (1 - A_BETAS[0]) * ga, "exp_avg_sq": (1 - A_BETAS[1]) * ga * ga, "lr": lr}


def assert_step_matches(loop: Any, want: dict[str, Any]) -> None:
    state = loop.a_opt.state[loop.model.alphas]
    assert torch.allclose(state["exp_avg"], want["exp_avg"], rtol=1e-4, atol=1e-9), "α's gradient differs"
    assert torch.allclose(state["exp_avg_sq"], want["exp_avg_sq"], rtol=1e-3, atol=1e-14)
    assert torch.allclose(loop.model.alphas.detach(), want["alpha"], atol=1e-7)
    for got, w in zip(loop.model.weights(), want["weights"]):
        assert torch.allclose(got.detach(), w, rtol=1e-4, atol=1e-6)
