"""DisWOT: student architecture search for distillation without training.

Dong, Li, Wei, Lu, "DisWOT: Student Architecture Search for Distillation WithOut
Training", CVPR 2023 (reference code: lliai/DisWOT-CVPR2023,
``exps/parse_nb201_distill.py``). Teacher and student are both randomly initialised and
see one real labelled batch. Two similarities, each the negative of a distance:

* **semantic** (ICKD form): after one cross-entropy loss, the gradient of the classifier
  weight, G (K classes × C channels), is read as K samples of C channels with 1×1 spatial
  size; per class the C×C outer product g_k g_kᵀ, rows L2-normalised; the score is
  −Σ (M_t − M_s)² / (K·C) (the reference's ICKD normalisation).
  Where the widths differ (C_t ≠ C_s), the C×C matrices cannot be compared. The default
  (``semantic_form="auto"``) then drops the semantic term, with a warning, and DisWOT is
  the relation term alone; the width-independent K×K class-similarity Gram G Gᵀ (rows
  L2-normalised, −Σ (·)² / K²) is offered as ``semantic_form="class"`` but never chosen
  automatically: on 120 NB201 cells it correlated *negatively* with accuracy (ρ −.41 / −.04).
* **relation** (SP form, Tung & Mori 2019): the pre-pooling feature map flattened to B×D,
  the B×B Gram, rows L2-normalised; the score is −‖G_t − G_s‖²_F / B².

Departures from the reference, on purpose:

* The classifier gradient is computed in closed form from one forward pass,
  ∂CE/∂W = (softmax(z) − onehot(y))ᵀ h / B with h the pooled features, so no backward
  pass is needed (tests check it against autograd); BN uses batch statistics as in the
  reference's train mode.
* Everything that depends on the teacher and the batch is computed once (``prepare``);
  the reference recomputes the teacher for every student and never zeroes its gradient.
* The reference's relation term (called with bare tensors, it compares one image's pooled
  features) is replaced by the batch Gram the paper describes.
* Students are built with the class count of the data (the reference builds 100-class
  NB201 students whatever the dataset).

Registered proxies: ``diswot_reference`` is the faithful computation (N(0,1) init of
conv/linear weights, BN weight 1/bias 0, semantic + relation unweighted);
``diswot``/``diswot_semantic``/``diswot_relation`` use :data:`DEFAULT` — see its comment
for why it departs and ``benchmarks/diswot_nb201.py`` for the measurements.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from searchkd.proxies._init import gaussian_init
from searchkd.proxies.base import register_proxy

__all__ = ["DisWOTConfig", "DEFAULT", "REFERENCE", "TeacherState", "prepare", "score", "gaussian_init",
           "classifier_grad", "semantic_matrices", "relation_gram"]


@dataclass(frozen=True)
class DisWOTConfig:
    """How DisWOT is computed.

    Attributes:
        init: ``"normal"`` re-initialises conv/linear weights N(0,1), biases 0, BN weight 1
            and bias 0 in teacher and student (the reference); ``"default"`` keeps each
            network's own initialisation (PyTorch's defaults / the space's).
        semantic_weight, relation_weight: the weights of the two terms in the sum.
        semantic_form: ``"channel"`` (C×C per class, the reference), ``"class"`` (K×K,
            width-independent) or ``"auto"`` (channel when widths match, else no semantic
            term, with a warning).
        semantic_norm: ``"mean"`` divides the channel form's squared differences by
            K·C² (a mean over matrix elements, like the relation term's 1/B²);
            ``"reference"`` divides by K·C as the reference's ICKD loss does.
    """

    init: str = "normal"
    semantic_weight: float = 1.0
    relation_weight: float = 1.0
    semantic_form: str = "auto"
    semantic_norm: str = "mean"


REFERENCE = DisWOTConfig(semantic_norm="reference")
# Measured on 1,000 NB201 cells × 3 seeds (benchmarks/diswot_nb201.py, docs/benchmarks.md):
# * The reference divides the semantic term by K·C but the relation term by B², so the
#   semantic term's spread is ~100× the relation term's and the sum ranks like the
#   semantic term alone. As a true mean (÷K·C²) both terms are mean squared differences
#   of row-normalised matrices and weigh about equally.
# * The N(0,1) re-initialisation makes both terms noisy across seeds (ρ .46 ± .09 for the
#   sum); with each network's own default initialisation the sum ranks at ρ .58 ± .04.
DEFAULT = DisWOTConfig(init="default")


@dataclass(frozen=True)
class TeacherState:
    """What DisWOT needs of the teacher, computed once per teacher and batch."""

    semantic_channel: torch.Tensor  # K×C×C, rows normalised
    semantic_class: torch.Tensor  # K×K, rows normalised
    relation: torch.Tensor  # B×B, rows normalised
    channels: int
    config: DisWOTConfig


def _forward(net: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pre-pooling features, classifier input and logits from one no-grad forward (train-mode BN)."""
    captured: list[torch.Tensor] = []
    handle = net.classifier.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    try:
        net.train()
        with torch.no_grad():
            feats = net.forward_features(images)
            logits = net.forward_head(feats)
    finally:
        handle.remove()
    return feats, captured[0], logits


def classifier_grad(pooled: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """∂ mean-CE / ∂W of a linear classifier, K×C, in closed form."""
    p = logits.float().softmax(dim=1)
    p[torch.arange(len(labels)), labels] -= 1.0
    return p.t() @ pooled.float() / len(labels)


def semantic_matrices(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K×C×C per-class channel matrices, K×K class Gram), rows L2-normalised."""
    chan = F.normalize(grad.unsqueeze(2) * grad.unsqueeze(1), dim=2)
    cls = F.normalize(grad @ grad.t(), dim=1)
    return chan, cls


def relation_gram(feats: torch.Tensor) -> torch.Tensor:
    """B×B Gram of the flattened feature maps, rows L2-normalised."""
    f = feats.reshape(feats.shape[0], -1).float()
    return F.normalize(f @ f.t(), dim=1)


def _state(net: nn.Module, batch: tuple, config: DisWOTConfig) -> TeacherState:
    images, labels = batch
    if config.init == "normal":
        gaussian_init(net)
    elif config.init != "default":
        raise ValueError(f"unknown DisWOT init {config.init!r} (normal, default)")
    feats, pooled, logits = _forward(net, images)
    grad = classifier_grad(pooled, logits, labels)
    chan, cls = semantic_matrices(grad)
    return TeacherState(chan, cls, relation_gram(feats), grad.shape[1], config)


def prepare(teacher: nn.Module, batch: tuple, config: DisWOTConfig = DEFAULT) -> TeacherState:
    """The teacher's part of DisWOT (``teacher`` is a copy the engine owns)."""
    return _state(teacher, batch, config)


def score(student: nn.Module, batch: tuple, state: TeacherState) -> dict[str, float]:
    """The semantic and relation similarities of ``student`` to the teacher in ``state``."""
    s = _state(student, batch, state.config)
    form = state.config.semantic_form
    if form == "auto":
        form = "channel" if s.channels == state.channels else "none"
    if form == "none":
        warnings.warn(f"DisWOT: student width {s.channels} ≠ teacher width {state.channels}: the semantic term "
                      "is dropped and the score is the relation term alone", RuntimeWarning, stacklevel=2)
        semantic = 0.0
    elif form == "channel":
        if s.channels != state.channels:
            raise ValueError("semantic_form='channel' needs equal teacher and student widths")
        k, c = s.semantic_channel.shape[:2]
        norm = {"mean": k * c * c, "reference": k * c}.get(state.config.semantic_norm)
        if norm is None:
            raise ValueError(f"unknown semantic_norm {state.config.semantic_norm!r} (mean, reference)")
        semantic = -float(((state.semantic_channel - s.semantic_channel) ** 2).sum()) / norm
    elif form == "class":
        k = s.semantic_class.shape[0]
        semantic = -float(((state.semantic_class - s.semantic_class) ** 2).sum()) / (k * k)
    else:
        raise ValueError(f"unknown semantic_form {state.config.semantic_form!r} (auto, channel, class)")
    b = s.relation.shape[0]
    relation = -float(((state.relation - s.relation) ** 2).sum()) / (b * b)
    return {"semantic": semantic, "relation": relation}


def _combined(net: nn.Module, batch: tuple, state: TeacherState) -> float:
    parts = score(net, batch, state)
    c = state.config
    return c.semantic_weight * parts["semantic"] + c.relation_weight * parts["relation"]


def _prepare_with(config: DisWOTConfig) -> Any:
    return lambda teacher, batch: prepare(teacher, batch, config)


register_proxy("diswot", needs_teacher=True, prepare=_prepare_with(DEFAULT),
               description="DisWOT semantic + relation similarity to the teacher (Dong et al., CVPR 2023)")(_combined)
register_proxy("diswot_reference", needs_teacher=True, prepare=_prepare_with(REFERENCE),
               description="DisWOT as the reference code computes it (N(0,1) init, terms summed)")(_combined)
register_proxy("diswot_semantic", needs_teacher=True, prepare=_prepare_with(DEFAULT),
               description="DisWOT semantic term: classifier-gradient channel correlations vs the teacher's")(
    lambda net, batch, state: score(net, batch, state)["semantic"])
register_proxy("diswot_relation", needs_teacher=True, prepare=_prepare_with(DEFAULT),
               description="DisWOT relation term: batch Gram of pre-pooling features vs the teacher's")(
    lambda net, batch, state: score(net, batch, state)["relation"])


def with_config(**changes: Any) -> DisWOTConfig:
    """A variant of the default configuration (for benchmarks and the Python API)."""
    return replace(DEFAULT, **changes)
