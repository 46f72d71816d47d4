"""The labelled task of ``searchkd acm --task T`` (T: a task of
:mod:`searchkd.data.text_tasks`, ``pydoc-topics`` or ``csv:PATH``).

The authors convert a model already trained on its task (a ViT-B classifier on ImageNet) and
fine-tune the converted one on that task's loss. A text encoder such as MiniLM has no task, so
with ``--task`` the dense encoder and a linear classifier on its mean-pooled last hidden state
are first fine-tuned on the task's training split (:func:`finetune_classifier`; Adam, lr 1e-4,
``task_steps`` steps of ``batch_size`` sequences, gradient norm clipped to 1); that tuned
encoder is the model converted (stages 1-2 learn its FFNs) and its classifier starts stage 3,
whose task loss is the cross-entropy of the converted encoder under the same classifier
(:mod:`searchkd.supernets.acm.stage3`). Accuracy is measured on the held-out split
(stratified, 30 %, the ``split`` seed stream). Departure: the recipe of
:func:`searchkd.distill.downstream.finetune_accuracy` has AdamW with warm-up and decay; here
plain Adam at a constant lr, as stage 3 uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

__all__ = ["TaskSplit", "load_task_split", "finetune_classifier", "accuracy", "trim"]


def trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch without the padding columns past its longest row (nothing real changes)."""
    n = max(1, int(mask.sum(1).max()))
    return ids[:, :n], mask[:, :n]


@dataclass(frozen=True)
class TaskSplit:
    """A task's name, classes and its encoded (ids, mask, labels) train and test splits."""

    name: str
    classes: tuple[str, ...]
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    def majority(self) -> float:
        y = self.test[2]
        return float(torch.bincount(y).max() / len(y))


def load_task_split(spec: str, tokenizer: Any, seed: int, *, max_length: int = 64, test: float = 0.3) -> TaskSplit:
    """Load ``spec`` and split it (stratified, the ``split`` stream of ``seed``)."""
    from searchkd.data.text_tasks import load_task
    from searchkd.seeds import stream_seed

    task = load_task(spec)
    train, held = task.split(test, seed=stream_seed(seed, "split"))

    def enc(part: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, mask = part.encode(tokenizer, max_length)
        return ids, mask, torch.from_numpy(part.labels).long()

    return TaskSplit(task.name, tuple(task.classes), enc(train), enc(held))


def finetune_classifier(encoder: nn.Module, head: nn.Module, rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor], *,
                        steps: int, batch_size: int, seed: int, name: str = "task", lr: float = 1e-4) -> list[float]:
    """Train ``encoder`` and ``head`` (in place) on ``rows`` by the cross-entropy of the head on
    the mean-pooled last hidden state; batches and dropout from :func:`~searchkd.supernets.acm.steps.step_seed`."""
    from searchkd.supernets.acm.steps import batch_rows, pooled_logits, step_seed

    ids, mask, y = rows
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    device = next(encoder.parameters()).device
    encoder.train(), head.train()
    losses = []
    for step in range(steps):
        idx = batch_rows(step, len(ids), batch_size, seed, name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(step_seed(seed, name, step))
            b_ids, b_mask = trim(ids[idx], mask[idx])
            loss = nn.functional.cross_entropy(pooled_logits(encoder, head, b_ids.to(device), b_mask.to(device)),
                                               y[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    encoder.eval(), head.eval()
    return losses


@torch.no_grad()
def accuracy(encoder: nn.Module, head: nn.Module, rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
             batch_size: int = 64) -> float:
    """Accuracy of ``head`` on ``encoder``'s mean-pooled states (eval mode, real tokens only)."""
    from searchkd.supernets.acm.steps import pooled_logits

    ids, mask, y = rows
    device = next(encoder.parameters()).device
    was = encoder.training
    encoder.eval()
    correct = 0
    for i in range(0, len(ids), batch_size):
        b_ids, b_mask = trim(ids[i:i + batch_size], mask[i:i + batch_size])
        logits = pooled_logits(encoder, head, b_ids.to(device), b_mask.to(device))
        correct += int((logits.argmax(-1).cpu() == y[i:i + batch_size]).sum())
    encoder.train(was)
    return correct / len(ids)


def new_head(width: int, classes: int, seed: int) -> nn.Linear:
    """The classifier: normal(0, 0.02) weights, zero bias (BERT's), seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(width, classes)
        nn.init.normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
    return head
