"""Stage 3 of ACMization (Wójcik et al., AAAI 2025, §3.2; the authors'
``methods/acm/end_to_end.py``): the whole converted model, gates sampled by hard
Gumbel-softmax (straight-through), fine-tuned end to end per target budget b on

    task loss + 0.1 · |compute fraction − b| + 0.05 · entropy term + 0.05 · diversity term

* **task loss**: where a labelled task is given (``task=``, ``searchkd acm --task``), the
  cross-entropy of a classifier on the mean-pooled last hidden state (the authors' model is a
  classifier; theirs reads ViT's class token, here MiniLM's sentence reading, mean pooling).
  Where none is given (declared departure), the MSE of the final hidden states against the
  dense model's over real tokens (:func:`hidden_loss`): agreement with the model converted,
  the only target a task-less encoder has.
* **budget** (their L1 routing loss, ``budget_weight``): the mean over real tokens of k / N,
  averaged over the ACMs weighted by their learners' cost (theirs; FFN blocks alone cost the
  same, attention projections less), against b.
* **entropy** (``entropy_weight``, :func:`entropy_loss`): per sequence and ACM, the choices'
  histogram over the sequence's tokens, its entropy normalised by log(N + 1), negated and
  averaged: it rewards spreading a sequence's tokens over k.
* **diversity** (``diversity_weight``, :func:`diversity_loss`): per sequence the mean of g·k
  over its tokens, ACMs and the N + 1 choices (their normalisation), then −2 × the mean
  pairwise L1 distance between sequences: it rewards sequences that differ in compute.

Departures: padding tokens are left out of every term (ViT has none); Adam at lr 1e-4 for
``stage3_steps`` steps (theirs: 97 epochs of ImageNet with their schedule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from searchkd.supernets.acm.model import acm_modules

__all__ = ["TaskRows", "stage3", "stage3_loss", "compute_fraction", "gate_tensor", "diversity_loss", "entropy_loss",
           "hidden_loss"]


@dataclass(frozen=True)
class TaskRows:
    """Token rows of a labelled task and the classifier stage 3 trains with them."""

    ids: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    head: nn.Module


def gate_tensor(model: nn.Module) -> torch.Tensor:
    """B×T×ACMs×(N+1): every ACM's one-hot choice of the last forward (differentiable while training)."""
    return torch.stack([a.last_gate for a in acm_modules(model)], dim=2)


def compute_fraction(model: nn.Module, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From the last forward's gate choices: the fraction of learner compute (k / N) over the
    real tokens, averaged over the ACMs weighted by their learners' cost (the authors'
    ``block_costs``-weighted sum over ``max_gating_cost``; a plain mean when every ACM costs the
    same, as FFN blocks alone do), and the same per sequence (B), differentiable through the gates."""
    g = gate_tensor(model)
    n = g.shape[-1] - 1
    per_acm = (g * torch.arange(n + 1, device=g.device, dtype=g.dtype) / n).sum(-1)  # B×T×ACMs
    cost = [a.shape.learner_flops() * a.learners for a in acm_modules(model)]
    if len(set(cost)) == 1:
        frac = per_acm.mean(-1)  # B×T
    else:  # attention projections cost less than an FFN block
        w = torch.tensor(cost, device=g.device, dtype=g.dtype)
        frac = (per_acm * (w / w.sum())).sum(-1)
    m = mask.to(frac.dtype)
    return (frac * m).sum() / m.sum().clamp_min(1), (frac * m).sum(1) / m.sum(1).clamp_min(1)


def diversity_loss(gates: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The authors' compute-diversity term of ``gates`` (B×T×ACMs×C) over real tokens."""
    g = gates.double()
    m = mask.to(g.dtype)
    k = torch.arange(g.shape[-1], device=g.device, dtype=g.dtype)
    per_token = (g * k).mean(dim=(2, 3))  # their mean over ACMs and choices
    per_seq = (per_token * m).sum(1) / m.sum(1).clamp_min(1)
    return -2 * (per_seq[:, None] - per_seq[None, :]).abs().mean()


def entropy_loss(gates: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The authors' entropy term of ``gates`` (B×T×ACMs×C) over real tokens: −(mean normalised
    entropy of each sequence's and ACM's histogram of choices)."""
    g = gates.double() * mask.to(torch.float64)[:, :, None, None]
    counts = g.sum(1)  # B×ACMs×C
    p = counts / counts.sum(-1, keepdim=True).clamp_min(1e-20)
    entropy = -(p * (p + 1e-20).log()).sum(-1)
    return -(entropy / math.log(g.shape[-1])).mean()


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the final hidden states over real tokens (the distillation loss)."""
    m = mask.to(student.dtype).unsqueeze(-1)
    return ((student - teacher) ** 2 * m).sum() / (m.sum() * student.shape[-1])


def stage3_loss(model: nn.Module, main: torch.Tensor, mask: torch.Tensor, budget: float, config: Any) -> torch.Tensor:
    """``main`` (the task or agreement loss of the forward just run) plus the gate terms."""
    frac, _ = compute_fraction(model, mask)
    gates = gate_tensor(model)
    total = main + config.budget_weight * (frac - budget).abs()
    if config.entropy_weight:
        total = total + config.entropy_weight * entropy_loss(gates, mask).to(main.dtype)
    if config.diversity_weight:
        total = total + config.diversity_weight * diversity_loss(gates, mask).to(main.dtype)
    return total


def stage3(model: nn.Module, dense: nn.Module, ids: torch.Tensor, mask: torch.Tensor, budget: float,
           config: Any, *, meta: dict[str, Any], ckpt: Path | None = None, progress: bool | None = None,
           task: TaskRows | None = None) -> list[float]:
    """Stage 3 for target ``budget`` (a fraction of the learner compute, in (0, 1]): on
    ``task`` (its rows, labels and classifier ``head``, trained too) where given, else on
    agreement with ``dense`` over ``ids``/``mask`` (see the module docstring)."""
    from searchkd.supernets.acm.steps import _params, _run, batch_rows, pooled_logits

    device = next(model.parameters()).device
    dense.eval()

    def loss(step: int) -> torch.Tensor:
        if task is not None:
            from searchkd.supernets.acm.task import trim

            idx = batch_rows(step, len(task.ids), config.batch_size, config.seed, "stage3")
            b_ids, b_mask = (t.to(device) for t in trim(task.ids[idx], task.mask[idx]))
            b_y = task.labels[idx].to(device)
            main = nn.functional.cross_entropy(pooled_logits(model, task.head, b_ids, b_mask), b_y)
        else:
            idx = batch_rows(step, len(ids), config.batch_size, config.seed, "stage3")
            b_ids, b_mask = ids[idx].to(device), mask[idx].to(device)
            with torch.no_grad():
                target = dense(input_ids=b_ids, attention_mask=b_mask).last_hidden_state
            main = hidden_loss(model(input_ids=b_ids, attention_mask=b_mask).last_hidden_state, target, b_mask)
        return stage3_loss(model, main, b_mask, budget, config)

    params = _params(model, lambda n: True)
    if task is not None:
        params.update({f"task_head.{n}": p for n, p in task.head.named_parameters()})
        task.head.train()
    model.train()
    try:
        return _run(f"stage3-b{budget:g}", model, params, config.stage3_steps, config.stage3_lr, loss, config=config,
                    meta={**meta, "budget": budget, "task": task is not None}, ckpt=ckpt, progress=progress)
    finally:
        model.eval()
        if task is not None:
            task.head.eval()
