"""Adaptive Computation Modules (Wójcik et al., "Adaptive Computation Modules: Granular
Conditional Computation for Efficient Inference", AAAI 2025, arXiv 2312.10193) for BERT-family
encoders: every feed-forward block becomes N small learners whose outputs are summed
progressively, and a per-token gate picks how many of them (k ∈ {0,…,N}) run.

* **Learners**: two-layer MLPs of ``intermediate // N`` units each, so that the N of them cost
  what the dense block costs (the paper's ``block_flops_factor = 1/N``). k learners output the
  sum of the first k; k = 0 outputs zero, which inside the residual branch leaves the token as
  the attention block passed it.
* **Gate**: the authors' ``acm_deep_gumbel`` of their ViT-B run: three ``nn.Linear`` layers
  (width 16, no nonlinearity between them) over the block's input giving N + 1 logits; a hard
  Gumbel-softmax sample (straight-through, temperature 0.8) while training, the argmax at
  inference. (``gate="mlp"``: Linear→GELU→Linear, this project's earlier gate, kept so models
  saved with it reload.)
* **Execution**: at inference tokens are sorted by their k (descending), so learner j runs on
  one contiguous slice, the tokens with k ≥ j; only chosen learners run, and the FLOPs counted
  are the ones that ran (padding tokens get k = 0: attention never reads them). The converted
  model carries a forward pre-hook that hands its ``attention_mask`` to every ACM, so a model
  reopened by :func:`searchkd.supernets.acm.io.load_acm` counts padding as free too, without
  :class:`set_token_mask`.

Departures: (1) the learners start from the dense block by default (``init="slices"``): its
units, ranked by ‖w_in‖·‖w_out‖, are dealt into N consecutive slices, so k = N reproduces
the dense block before any training and stage 1 only has to improve the partial sums; the
paper trains learners from a random initialisation (``init="random"`` here). (2) Only BERT's
layout (``encoder.layer[i].intermediate.dense`` → ``output.dense`` → ``output.LayerNorm``) is
converted; its post-LayerNorm residual is kept: ``LayerNorm(dropout(acm(h)) + h)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from searchkd.errors import SearchKDError

__all__ = ["ACM", "ACMOutput", "ACMShape", "acmize", "acm_modules", "ffn_layers", "count_flops", "reset_flops",
           "set_token_mask", "ACTIVATIONS", "GATE_HIDDEN", "GATES", "all_learners"]

GATE_HIDDEN = 16  # the authors' ViT-B setting
GATES = ("linear3", "mlp")
ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


@dataclass(frozen=True)
class ACMShape:
    """The shape of the ACMs of a converted model (one per layer)."""

    hidden: int
    intermediate: int
    learners: int
    width: int
    gate_hidden: int
    activation: str
    gate: str = "linear3"  # the authors' depth-3 gate; "mlp": Linear→GELU→Linear (earlier saves)

    def learner_flops(self) -> int:
        """FLOPs of one learner on one token: two matmuls at 2 FLOPs per multiply-add."""
        return 4 * self.hidden * self.width

    def gate_flops(self) -> int:
        middle = 2 * self.gate_hidden * self.gate_hidden if self.gate == "linear3" else 0
        return 2 * self.hidden * self.gate_hidden + middle + 2 * self.gate_hidden * (self.learners + 1)

    def dense_flops(self) -> int:
        """FLOPs of the dense block on one token (the same counting)."""
        return 4 * self.hidden * self.intermediate


class ACM(nn.Module):
    """N progressively summed learners and their gate (see the module docstring).

    Attributes set from outside: ``force_k`` (an int: every token uses k learners, the gate does
    not run; None: the gate decides), ``token_mask`` (B×T bool of real tokens, or None),
    ``tau`` (the Gumbel-softmax temperature). After a forward, ``last_gate`` holds the gate's
    one-hot choice (B×T×(N+1), differentiable while training) and ``last_k`` the k per token;
    ``flops`` and ``tokens`` accumulate the FLOPs that ran and the real tokens seen.
    """

    def __init__(self, shape: ACMShape) -> None:
        super().__init__()
        if shape.activation not in ACTIVATIONS:
            raise SearchKDError(f"ACM: activation {shape.activation!r} is not supported "
                                f"(known: {', '.join(sorted(ACTIVATIONS))})")
        s = self.shape = shape
        n, h, w = s.learners, s.hidden, s.width
        self.w1 = nn.Parameter(torch.empty(n, h, w))
        self.b1 = nn.Parameter(torch.zeros(n, w))
        self.w2 = nn.Parameter(torch.empty(n, w, h))
        self.b2 = nn.Parameter(torch.zeros(n, h))
        for j in range(n):  # nn.Linear's initialisation, learner by learner
            nn.init.kaiming_uniform_(self.w1.data[j].T, a=math.sqrt(5))
            nn.init.kaiming_uniform_(self.w2.data[j].T, a=math.sqrt(5))
        if s.gate not in GATES:
            raise SearchKDError(f"ACM: unknown gate {s.gate!r} ({', '.join(GATES)})")
        g = s.gate_hidden
        middle = nn.Linear(g, g) if s.gate == "linear3" else nn.GELU()
        self.gate = nn.Sequential(nn.Linear(h, g), middle, nn.Linear(g, n + 1))
        self.act = ACTIVATIONS[s.activation]
        self.force_k: int | None = None
        self.token_mask: torch.Tensor | None = None
        self._mask_stack: list[torch.Tensor | None] = []
        self.tau = 0.8  # the authors' Gumbel-softmax temperature
        self.last_gate: torch.Tensor | None = None
        self.last_k: torch.Tensor | None = None
        self.flops = 0.0
        self.tokens = 0

    @property
    def learners(self) -> int:
        return self.shape.learners

    def learner(self, j: int, x: torch.Tensor) -> torch.Tensor:
        """Learner ``j`` (0-based) on ``x`` (…×H)."""
        return self.act(x @ self.w1[j] + self.b1[j]) @ self.w2[j] + self.b2[j]

    def partial_sums(self, x: torch.Tensor, detach_previous: bool = False) -> torch.Tensor:
        """…×(N+1)×H: index k holds the sum of the first k learners (index 0: zeros).

        ``detach_previous``: the k-th sum carries gradient only into learner k (stage 1: each
        learner learns the residual its predecessors leave, the paper's detach mode)."""
        sums = [torch.zeros_like(x)]
        for j in range(self.learners):
            prev = sums[-1].detach() if detach_previous else sums[-1]
            sums.append(prev + self.learner(j, x))
        return torch.stack(sums, dim=-2)

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(x)

    def choose(self, x: torch.Tensor) -> torch.Tensor:
        """The one-hot choice of k per token, …×(N+1): hard Gumbel-softmax while training
        (straight-through gradient), argmax at inference, ``force_k`` when set; padding
        tokens (``token_mask``) get k = 0 at inference."""
        n1 = self.learners + 1
        if self.force_k is not None:
            k = torch.full(x.shape[:-1], int(self.force_k), dtype=torch.long, device=x.device)
            return F.one_hot(k, n1).to(x.dtype)
        logits = self.gate_logits(x)
        if self.training:
            return F.gumbel_softmax(logits.float(), tau=self.tau, hard=True).to(x.dtype)
        k = logits.argmax(-1)
        if self.token_mask is not None:
            k = k * self.token_mask.to(k.device, torch.long)
        return F.one_hot(k, n1).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.choose(x)
        self.last_gate, self.last_k = g, g.detach().argmax(-1)
        if self.training:
            return (g.unsqueeze(-1) * self.partial_sums(x)).sum(-2)
        return self.grouped(x, self.last_k)

    def masked(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Every learner on every token, then the k-th partial sum kept (the reference the
        grouped execution must equal)."""
        sums = self.partial_sums(x)
        return sums.gather(-2, k[..., None, None].expand(*k.shape, 1, x.shape[-1])).squeeze(-2)

    def grouped(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Tokens sorted by k (descending); learner j runs only on the first
        ``#{tokens: k > j}`` of them; FLOPs are counted for what ran."""
        flat, kf = x.reshape(-1, x.shape[-1]), k.reshape(-1)
        order = torch.argsort(kf, descending=True, stable=True)
        xs = flat[order]
        counts = torch.bincount(kf, minlength=self.learners + 1).flip(0).cumsum(0).flip(0)  # counts[j] = #(k >= j)
        out = torch.zeros_like(xs)
        ran = 0
        for j in range(self.learners):
            m = int(counts[j + 1])
            if m == 0:
                break
            out[:m] = out[:m] + self.learner(j, xs[:m])
            ran += m
        result = torch.empty_like(out)
        result[order] = out
        self._count(ran, k, gate=self.force_k is None)
        return result.reshape(x.shape)

    def _count(self, learner_tokens: int, k: torch.Tensor, gate: bool) -> None:
        real = int(k.numel() if self.token_mask is None else self.token_mask.sum())
        self.tokens += real
        self.flops += learner_tokens * self.shape.learner_flops() + (real * self.shape.gate_flops() if gate else 0)


class ACMOutput(nn.Module):
    """BERT's ``BertOutput`` with the dense FFN replaced: ``LayerNorm(dropout(acm(h)) + h)``
    (the layer's ``intermediate`` becomes the identity, so ``h`` arrives twice)."""

    def __init__(self, acm: ACM, layer_norm: nn.LayerNorm, dropout: float) -> None:
        super().__init__()
        self.acm, self.LayerNorm, self.dropout = acm, layer_norm, nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.acm(hidden_states)) + input_tensor)


def ffn_layers(model: nn.Module) -> list[nn.Module]:
    """The encoder layers of a BERT-layout model whose FFN can be converted (or already is)."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise SearchKDError(f"model {kind!r} has no feed-forward blocks searchkd recognises "
                            "(BERT layout: encoder.layer[i].intermediate.dense, output.dense, output.LayerNorm)")
    for i, layer in enumerate(layers):
        out = getattr(layer, "output", None)
        if isinstance(out, ACMOutput):
            continue
        inter = getattr(getattr(layer, "intermediate", None), "dense", None)
        if not (isinstance(inter, nn.Linear) and isinstance(getattr(out, "dense", None), nn.Linear)
                and isinstance(getattr(out, "LayerNorm", None), nn.LayerNorm)):
            raise SearchKDError(f"layer {i} has no feed-forward block searchkd recognises "
                                "(intermediate.dense, output.dense, output.LayerNorm)")
    return list(layers)


def acm_modules(model: nn.Module) -> list[ACM]:
    """The ACMs of a converted model, layer by layer."""
    return [m for m in model.modules() if isinstance(m, ACM)]


def _activation_name(model: nn.Module) -> str:
    act = getattr(getattr(model, "config", None), "hidden_act", "gelu")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise SearchKDError(f"the model's FFN activation {act!r} is not supported by ACM "
                            f"(known: {', '.join(sorted(ACTIVATIONS))})")
    return act


def acmize(model: nn.Module, learners: int, *, gate_hidden: int = GATE_HIDDEN, init: str = "slices",
           seed: int = 0, gate: str = "linear3") -> nn.Module:
    """Replace every FFN block of ``model`` (in place) with an :class:`ACM`; returns ``model``.

    Args:
        learners: N >= 2.
        init: ``"slices"`` (learners are the dense block's units, ranked and dealt out, see the
            module docstring) or ``"random"`` (the paper's).
        seed: the initialisation of learners (``random``) and gates.
        gate: ``"linear3"`` (the authors') or ``"mlp"``.
    """
    if not isinstance(learners, int) or learners < 2:
        raise SearchKDError(f"ACM needs at least 2 learners, got {learners!r}")
    if init not in ("slices", "random"):
        raise SearchKDError(f"unknown ACM init {init!r} (slices, random)")
    layers = ffn_layers(model)
    act = _activation_name(model)
    dropout = float(getattr(getattr(model, "config", None), "hidden_dropout_prob", 0.0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in layers:
            inter, out = layer.intermediate.dense, layer.output.dense
            h, i = inter.in_features, inter.out_features
            if i < learners:
                raise SearchKDError(f"an FFN of {i} units cannot be split into {learners} learners")
            shape = ACMShape(hidden=h, intermediate=i, learners=learners, width=i // learners,
                             gate_hidden=gate_hidden, activation=act, gate=gate)
            acm = ACM(shape).to(inter.weight.device, inter.weight.dtype)
            if init == "slices":
                _init_from_dense(acm, inter, out)
            layer.intermediate = nn.Identity()
            layer.output = ACMOutput(acm, layer.output.LayerNorm, dropout).train(layer.training)
    if not getattr(model, "_acm_mask_hooked", False):
        model.register_forward_pre_hook(_take_mask, with_kwargs=True)
        model.register_forward_hook(_drop_mask, always_call=True)
        model._acm_mask_hooked = True
    return model


def _take_mask(model: nn.Module, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook of a converted model: its ``attention_mask`` (keyword or second
    positional argument) becomes every ACM's ``token_mask`` for this forward."""
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    for m in acm_modules(model):
        m._mask_stack.append(m.token_mask)
        if mask is not None:
            m.token_mask = mask.bool()


def _drop_mask(model: nn.Module, *_: Any) -> None:
    for m in acm_modules(model):
        if m._mask_stack:
            m.token_mask = m._mask_stack.pop()


@torch.no_grad()
def _init_from_dense(acm: ACM, inter: nn.Linear, out: nn.Linear) -> None:
    w_in, w_out = inter.weight, out.weight  # I×H, H×I
    importance = w_in.norm(dim=1) * w_out.norm(dim=0)
    order = torch.argsort(importance, descending=True)
    w = acm.shape.width
    for j in range(acm.learners):
        units = order[j * w:(j + 1) * w]
        acm.w1[j].copy_(w_in[units].T)
        acm.b1[j].copy_(inter.bias[units] if inter.bias is not None else 0)
        acm.w2[j].copy_(w_out[:, units].T)
        acm.b2[j].zero_()
    if out.bias is not None:
        acm.b2[0].copy_(out.bias)


# ---- FLOPs accounting -----------------------------------------------------------------------
def all_learners(model: nn.Module) -> nn.Module:
    """A copy of a converted model whose every gate is forced to k = N (every learner on every token)."""
    import copy

    full = copy.deepcopy(model)
    for m in acm_modules(full):
        m.force_k = m.learners
    return full


def reset_flops(model: nn.Module) -> None:
    for m in acm_modules(model):
        m.flops, m.tokens = 0.0, 0


def count_flops(model: nn.Module) -> dict[str, Any]:
    """FLOPs per real token that the ACMs ran since :func:`reset_flops`, summed over layers,
    and the dense FFNs' FLOPs per token for comparison."""
    acms = acm_modules(model)
    tokens = acms[0].tokens if acms else 0
    ran = sum(m.flops for m in acms) / max(tokens, 1)
    dense = sum(m.shape.dense_flops() for m in acms)
    return {"flops_per_token": ran, "dense_flops_per_token": dense, "fraction": ran / dense if dense else 0.0,
            "tokens": tokens}


class set_token_mask:
    """``with set_token_mask(model, attention_mask): model(...)``: the ACMs know the real tokens."""

    def __init__(self, model: nn.Module, mask: torch.Tensor | None) -> None:
        self.acms, self.mask = acm_modules(model), None if mask is None else mask.bool()

    def __enter__(self) -> None:
        for m in self.acms:
            m.token_mask = self.mask

    def __exit__(self, *exc: Any) -> None:
        for m in self.acms:
            m.token_mask = None
