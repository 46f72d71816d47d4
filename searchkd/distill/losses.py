"""Distillation losses: logit KD and the two feature distillers DisWOT trains with.

- :func:`kd_loss` — Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
  Network" (2015): ``(1−w)·CE(s, y) + w·T²·KL(softmax(t/T) ‖ softmax(s/T))``. The T² keeps
  the soft-target gradients on the scale of the hard-target ones as T changes.
- :func:`sp_loss` — Tung & Mori, "Similarity-Preserving Knowledge Distillation" (ICCV
  2019): the B×B Gram of the flattened features of a batch, each row L2-normalised;
  ``‖G_t − G_s‖²_F / B²``. Only the batch sizes must match, not the feature shapes.
- :func:`ickd_loss` / :class:`ICKD` — Liu et al., "Exploring Inter-Channel Correlation
  for Diversity-Preserved Knowledge Distillation" (ICCV 2021): per image the C×C channel
  Gram of the feature map, rows L2-normalised; ``Σ‖G_t − G_s‖²_F / (C·B)``. The student's
  map first goes through a learnt 1×1 conv + BN embedding to the teacher's width, as in
  the paper's CIFAR code; that embedding is trained with the student and then dropped.

Both feature losses act on the pre-pooling maps (``forward_features``), the place DisWOT
applies them. Default weights follow the usual CIFAR settings (SP β = 3000, as in the CRD
benchmark; ICKD β = 2.5); pass other weights through ``feature_losses``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["kd_loss", "sp_loss", "ickd_loss", "ICKD", "FEATURE_LOSSES", "parse_feature_losses"]

#: feature distillers and their default weights
FEATURE_LOSSES: dict[str, float] = {"sp": 3000.0, "ickd": 2.5}


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor,
            temperature: float = 4.0, kd_weight: float = 0.9) -> torch.Tensor:
    """Hinton KD; with ``teacher_logits=None`` (or ``kd_weight=0``) plain cross-entropy.

    The KL term is summed over classes and averaged over the batch (``batchmean``), the
    definition of KL divergence per sample.
    """
    s = student_logits.float()
    ce = F.cross_entropy(s, labels)
    if teacher_logits is None or kd_weight == 0:
        return ce
    t = teacher_logits.float().detach()
    kl = F.kl_div(F.log_softmax(s / temperature, dim=1), F.log_softmax(t / temperature, dim=1),
                  reduction="batchmean", log_target=True)
    return (1.0 - kd_weight) * ce + kd_weight * temperature**2 * kl


def sp_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving loss between a student and a teacher batch of features."""
    b = f_s.shape[0]
    g_s = F.normalize(f_s.float().reshape(b, -1) @ f_s.float().reshape(b, -1).t(), dim=1)
    g_t = F.normalize(f_t.float().reshape(b, -1) @ f_t.float().reshape(b, -1).t(), dim=1)
    return (g_t.detach() - g_s).pow(2).sum() / (b * b)


def ickd_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Inter-channel correlation loss; ``f_s`` already embedded to the teacher's C channels."""
    b, c = f_s.shape[:2]
    if f_t.shape[1] != c:
        raise ValueError(f"ICKD needs equal channel counts (student {c}, teacher {f_t.shape[1]}); embed the student first")
    s = f_s.float().reshape(b, c, -1)
    t = f_t.float().reshape(b, c, -1)
    g_s = F.normalize(s @ s.transpose(1, 2), dim=2)
    g_t = F.normalize(t @ t.transpose(1, 2), dim=2)
    return (g_t.detach() - g_s).pow(2).sum() / (c * b)


class ICKD(nn.Module):
    """ICKD with the paper's learnt 1×1 conv + BN embedding of the student map."""

    def __init__(self, s_channels: int, t_channels: int) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Conv2d(s_channels, t_channels, 1, bias=False), nn.BatchNorm2d(t_channels))

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return ickd_loss(self.embed(f_s), f_t)


def parse_feature_losses(spec: Iterable[str] | Mapping[str, float] | str | None) -> dict[str, float]:
    """``("sp", "ickd")``, ``"sp,ickd"``, ``"sp=1000"`` or ``{"sp": 1000.0}`` → name → weight."""
    from searchkd.errors import SearchKDError

    if spec is None:
        return {}
    if isinstance(spec, str):
        spec = [p for p in spec.split(",") if p.strip()]
    items = spec.items() if isinstance(spec, Mapping) else [_split_weight(str(p)) for p in spec]
    out: dict[str, float] = {}
    for name, weight in items:
        name = str(name).strip().lower()
        if name not in FEATURE_LOSSES:
            raise SearchKDError(f"unknown feature loss {name!r} (known: {', '.join(FEATURE_LOSSES)})")
        w = FEATURE_LOSSES[name] if weight is None else float(weight)
        if not w >= 0:
            raise SearchKDError(f"feature loss weight must be ≥ 0, got {name}={weight}")
        out[name] = w
    return out


def _split_weight(part: str) -> tuple[str, float | None]:
    from searchkd.errors import SearchKDError

    name, sep, w = part.partition("=")
    if not sep:
        return name, None
    try:
        return name, float(w)
    except ValueError:
        raise SearchKDError(f"feature loss weight must be a number, got {part!r}") from None
