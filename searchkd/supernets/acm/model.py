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

* **Attention projections** (``convert="attention"`` or ``"all"``; the authors' main ViT-B run
  converts the FFNs and q/k/v/o, ``acmize_vit`` with ``q_proj = k_proj = v_proj = o_proj =
  True``): each of a layer's Q, K, V and attention-output ``nn.Linear`` (d_in → d_out) becomes
  an ACM of the authors' shape for a linear layer: learners d_in → r → d_out with the identity
  between the two matmuls (their ``attention_activation='identity'``), r = round((d_in·d_out +
  d_out) / (N·(d_in + d_out + 1))) (their ``attention_linear_block_dim`` with
  ``block_flops_factor = 1/N``), so that N learners cost the dense projection; its own gate
  (the same depth-3 gate on the projection's input) chooses k ∈ {1,…,N}, never 0 (their
  ``min_choice`` of 1 for q/k/v/o_proj: a zero query, key or value is not a residual skip).

Departures: (1) the learners start from the dense block by default (``init="slices"``): its
units, ranked by ‖w_in‖·‖w_out‖, are dealt into N consecutive slices, so k = N reproduces
the dense block before any training and stage 1 only has to improve the partial sums; the
paper trains learners from a random initialisation (``init="random"`` here). For an attention
projection W = U·S·Vᵀ the same idea is its truncated SVD: learner j holds singular directions
j·r … (j+1)·r − 1 (largest first, √S on each side), so k learners are the best rank-k·r
approximation of W (Eckart–Young) and N learners reproduce W exactly when its rank is at most
N·r; a full-rank W is not reproduced (N·r ≈ min(d_in, d_out) / 2, the authors' FLOPs-matched
size); the projection's bias rides on learner 1's output bias, which always runs (k ≥ 1),
where theirs has a hidden bias only (``bias='hidden_only'``). (2) Only BERT's layout
(``encoder.layer[i].intermediate.dense`` → ``output.dense`` → ``output.LayerNorm``;
``attention.self.query|key|value``, ``attention.output.dense``) is converted; its
post-LayerNorm residual is kept: ``LayerNorm(dropout(acm(h)) + h)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from searchkd.errors import SearchKDError

__all__ = ["ACM", "ACMOutput", "ACMShape", "acmize", "acm_modules", "ffn_layers", "attention_linears", "count_flops",
           "reset_flops", "set_token_mask", "ACTIVATIONS", "GATE_HIDDEN", "GATES", "CONVERT", "PROJECTIONS",
           "all_learners", "linear_width", "acm_sites", "converted"]

GATE_HIDDEN = 16  # the authors' ViT-B setting
GATES = ("linear3", "mlp")
CONVERT = ("ffn", "attention", "all")  # what acmize converts: FFN blocks, Q/K/V/O projections, both
PROJECTIONS = ("query", "key", "value", "output")  # a layer's attention projections, in execution order
ACTIVATIONS = {
    "identity": lambda x: x,  # an attention projection's learners (the authors' attention_activation)
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


@dataclass(frozen=True)
class ACMShape:
    """The shape of one ACM. ``kind="ffn"`` (an FFN block: ``hidden`` → ``intermediate`` →
    ``hidden``, learners of ``width`` units) or ``"linear"`` (an attention projection
    ``hidden`` → ``intermediate``, i.e. d_in → d_out, learners of rank ``width``); ``min_k``:
    the fewest learners the gate may choose (0 for an FFN block, 1 for a projection)."""

    hidden: int
    intermediate: int
    learners: int
    width: int
    gate_hidden: int
    activation: str
    gate: str = "linear3"  # the authors' depth-3 gate; "mlp": Linear→GELU→Linear (earlier saves)
    kind: str = "ffn"
    min_k: int = 0

    @property
    def d_out(self) -> int:
        return self.intermediate if self.kind == "linear" else self.hidden

    def learner_flops(self) -> int:
        """FLOPs of one learner on one token: two matmuls at 2 FLOPs per multiply-add."""
        return 2 * self.hidden * self.width + 2 * self.width * self.d_out

    def gate_flops(self) -> int:
        middle = 2 * self.gate_hidden * self.gate_hidden if self.gate == "linear3" else 0
        return 2 * self.hidden * self.gate_hidden + middle + 2 * self.gate_hidden * (self.learners + 1 - self.min_k)

    def dense_flops(self) -> int:
        """FLOPs of the dense block (or projection) on one token (the same counting)."""
        return 2 * self.hidden * self.intermediate * (1 if self.kind == "linear" else 2)


def linear_width(d_in: int, d_out: int, learners: int) -> int:
    """The authors' learner rank for a Linear d_in → d_out split into ``learners``
    (``attention_linear_block_dim`` with ``block_flops_factor = 1/N``): round((d_in·d_out +
    d_out) / (N·(d_in + d_out + 1))), at least 1."""
    return max(1, round((d_in * d_out + d_out) / (learners * (d_in + d_out + 1))))


class ACM(nn.Module):
    """N progressively summed learners and their gate (see the module docstring).

    Attributes set from outside: ``force_k`` (an int: every token uses k learners, the gate does
    not run; None: the gate decides), ``token_mask`` (B×T bool of real tokens, or None),
    ``tau`` (the Gumbel-softmax temperature), ``routing`` and ``k_offset`` (how inference picks
    k: :meth:`choose`). After a forward, ``last_gate`` holds the gate's
    one-hot choice (B×T×(N+1), differentiable while training) and ``last_k`` the k per token;
    ``flops`` and ``tokens`` accumulate the FLOPs that ran and the real tokens seen.
    """

    def __init__(self, shape: ACMShape) -> None:
        super().__init__()
        if shape.activation not in ACTIVATIONS:
            raise SearchKDError(f"ACM: activation {shape.activation!r} is not supported "
                                f"(known: {', '.join(sorted(ACTIVATIONS))})")
        s = self.shape = shape
        if s.kind not in ("ffn", "linear") or not 0 <= s.min_k < s.learners:
            raise SearchKDError(f"ACM: bad shape {s}")
        n, h, w, o = s.learners, s.hidden, s.width, s.d_out
        self.w1 = nn.Parameter(torch.empty(n, h, w))
        self.b1 = nn.Parameter(torch.zeros(n, w))
        self.w2 = nn.Parameter(torch.empty(n, w, o))
        self.b2 = nn.Parameter(torch.zeros(n, o))
        for j in range(n):  # nn.Linear's initialisation, learner by learner
            nn.init.kaiming_uniform_(self.w1.data[j].T, a=math.sqrt(5))
            nn.init.kaiming_uniform_(self.w2.data[j].T, a=math.sqrt(5))
        if s.gate not in GATES:
            raise SearchKDError(f"ACM: unknown gate {s.gate!r} ({', '.join(GATES)})")
        g = s.gate_hidden
        middle = nn.Linear(g, g) if s.gate == "linear3" else nn.GELU()
        self.gate = nn.Sequential(nn.Linear(h, g), middle, nn.Linear(g, n + 1 - s.min_k))
        self.act = ACTIVATIONS[s.activation]
        self.force_k: int | None = None
        self.token_mask: torch.Tensor | None = None
        self._mask_stack: list[torch.Tensor | None] = []
        self.tau = 0.8  # the authors' Gumbel-softmax temperature
        self.routing = "argmax"  # inference: argmax of the logits, or "expected" (settings.ROUTINGS)
        self.k_offset = 0.0  # "expected" routing: added to the expected k before rounding (calibrated)
        self.last_gate: torch.Tensor | None = None
        self.last_k: torch.Tensor | None = None
        self.flops = 0.0
        self.tokens = 0

    @property
    def learners(self) -> int:
        return self.shape.learners

    @property
    def in_features(self) -> int:  # an attention projection's ACM answers as the nn.Linear it replaced
        return self.shape.hidden

    @property
    def out_features(self) -> int:
        return self.shape.d_out

    def pad_choices(self, g: torch.Tensor) -> torch.Tensor:
        """The gate's choices over k = min_k…N (…×(N+1−min_k)) as …×(N+1), zeros below min_k
        (the authors' "minimum choice correction")."""
        return F.pad(g, (self.shape.min_k, 0)) if self.shape.min_k else g

    def learner(self, j: int, x: torch.Tensor) -> torch.Tensor:
        """Learner ``j`` (0-based) on ``x`` (…×H)."""
        return self.act(x @ self.w1[j] + self.b1[j]) @ self.w2[j] + self.b2[j]

    def partial_sums(self, x: torch.Tensor, detach_previous: bool = False) -> torch.Tensor:
        """…×(N+1)×H: index k holds the sum of the first k learners (index 0: zeros).

        ``detach_previous``: the k-th sum carries gradient only into learner k (stage 1: each
        learner learns the residual its predecessors leave, the paper's detach mode)."""
        sums = [x.new_zeros(*x.shape[:-1], self.shape.d_out)]
        for j in range(self.learners):
            prev = sums[-1].detach() if detach_previous else sums[-1]
            sums.append(prev + self.learner(j, x))
        return torch.stack(sums, dim=-2)

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(x)

    def choose(self, x: torch.Tensor) -> torch.Tensor:
        """The one-hot choice of k per token, …×(N+1): hard Gumbel-softmax while training
        (straight-through gradient), ``force_k`` when set; at inference the argmax of the
        logits, or with ``routing == "expected"`` round(E[k] + ``k_offset``) clamped to
        min_k…N, E[k] the expected k under the softmax of the logits (a token's k then follows
        its gate's estimate and one offset moves every token alike, so a budget below what
        the labels spend does not pile the tokens on one k); padding tokens (``token_mask``)
        get k = 0 at inference."""
        n1 = self.learners + 1
        if self.force_k is not None:
            k = torch.full(x.shape[:-1], int(self.force_k), dtype=torch.long, device=x.device)
            return F.one_hot(k, n1).to(x.dtype)
        logits = self.gate_logits(x)
        if self.training:
            return self.pad_choices(F.gumbel_softmax(logits.float(), tau=self.tau, hard=True).to(x.dtype))
        if self.routing == "expected":
            choices = torch.arange(self.shape.min_k, n1, device=x.device, dtype=torch.float32)
            e = (logits.float().softmax(-1) * choices).sum(-1)
            k = (e + self.k_offset).round().clamp(self.shape.min_k, self.learners).long()
        else:
            k = logits.argmax(-1) + self.shape.min_k if self.shape.min_k else logits.argmax(-1)
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
        return sums.gather(-2, k[..., None, None].expand(*k.shape, 1, sums.shape[-1])).squeeze(-2)

    def grouped(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Tokens sorted by k (descending); learner j runs only on the first
        ``#{tokens: k > j}`` of them; FLOPs are counted for what ran."""
        flat, kf = x.reshape(-1, x.shape[-1]), k.reshape(-1)
        order = torch.argsort(kf, descending=True, stable=True)
        xs = flat[order]
        counts = torch.bincount(kf, minlength=self.learners + 1).flip(0).cumsum(0).flip(0)  # counts[j] = #(k >= j)
        out = xs.new_zeros(len(xs), self.shape.d_out)
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
        return result.reshape(*x.shape[:-1], self.shape.d_out)

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


def attention_linears(model: nn.Module) -> list[list[tuple[nn.Module, str]]]:
    """Per encoder layer, its attention projections as (parent module, attribute name), in
    :data:`PROJECTIONS` order: ``attention.self.query|key|value`` and ``attention.output.dense``
    (each an ``nn.Linear``, or already an :class:`ACM`)."""
    out = []
    for i, layer in enumerate(ffn_layers(model)):
        att = getattr(layer, "attention", None)
        sites = [(getattr(att, "self", None), n) for n in ("query", "key", "value")]
        sites.append((getattr(att, "output", None), "dense"))
        if not all(isinstance(getattr(p, n, None), (nn.Linear, ACM)) for p, n in sites):
            raise SearchKDError(f"layer {i} has no attention projections searchkd recognises "
                                "(attention.self.query, key, value, attention.output.dense)")
        out.append(sites)
    return out


def acm_modules(model: nn.Module) -> list[ACM]:
    """The ACMs of a converted model, in execution order (per layer: Q, K, V, O, then the FFN)."""
    return [m for m in model.modules() if isinstance(m, ACM)]


def acm_sites(model: nn.Module) -> list[ACM]:
    """The ACMs of a converted model layer by layer, each layer's in a fixed order: its Q, K,
    V and attention-output projections (where converted), then its FFN block (where
    converted); the order of :func:`searchkd.supernets.acm.train.cache_modules`' pairs. A
    module without BERT's layout (ACMs held by hand): :func:`acm_modules`' order."""
    try:
        layers = ffn_layers(model)
    except SearchKDError:
        return acm_modules(model)
    out: list[ACM] = []
    for layer in layers:
        att = getattr(layer, "attention", None)
        for parent, name in ((getattr(att, "self", None), "query"), (getattr(att, "self", None), "key"),
                             (getattr(att, "self", None), "value"), (getattr(att, "output", None), "dense")):
            if isinstance(getattr(parent, name, None), ACM):
                out.append(getattr(parent, name))
        if isinstance(getattr(layer, "output", None), ACMOutput):
            out.append(layer.output.acm)
    return out


def converted(model: nn.Module) -> str:
    """What the ACMs of ``model`` replace: ``"ffn"``, ``"attention"`` or ``"all"`` (``"none"``)."""
    kinds = {m.shape.kind for m in acm_modules(model)}
    return {frozenset({"ffn"}): "ffn", frozenset({"linear"}): "attention",
            frozenset({"ffn", "linear"}): "all"}.get(frozenset(kinds), "none")


def _activation_name(model: nn.Module) -> str:
    act = getattr(getattr(model, "config", None), "hidden_act", "gelu")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise SearchKDError(f"the model's FFN activation {act!r} is not supported by ACM "
                            f"(known: {', '.join(sorted(ACTIVATIONS))})")
    return act


def acmize(model: nn.Module, learners: int, *, gate_hidden: int = GATE_HIDDEN, init: str = "slices",
           seed: int = 0, gate: str = "linear3", convert: str = "ffn") -> nn.Module:
    """Replace every FFN block and/or attention projection of ``model`` (in place) with an
    :class:`ACM`; returns ``model``.

    Args:
        learners: N >= 2.
        init: ``"slices"`` (learners are the dense block's units, ranked and dealt out, or the
            projection's truncated SVD, see the module docstring) or ``"random"`` (the paper's).
        seed: the initialisation of learners (``random``) and gates.
        gate: ``"linear3"`` (the authors') or ``"mlp"``.
        convert: ``"ffn"`` (the FFN blocks), ``"attention"`` (every layer's Q, K, V and
            attention-output projections) or ``"all"`` (both, the authors' main run).
    """
    if not isinstance(learners, int) or learners < 2:
        raise SearchKDError(f"ACM needs at least 2 learners, got {learners!r}")
    if init not in ("slices", "random"):
        raise SearchKDError(f"unknown ACM init {init!r} (slices, random)")
    if convert not in CONVERT:
        raise SearchKDError(f"unknown ACM convert {convert!r} ({', '.join(CONVERT)})")
    layers = ffn_layers(model)
    sites = attention_linears(model) if convert in ("attention", "all") else [[] for _ in layers]
    act = _activation_name(model) if convert in ("ffn", "all") else "identity"
    dropout = float(getattr(getattr(model, "config", None), "hidden_dropout_prob", 0.0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer, projections in zip(layers, sites):
            for parent, name in projections:  # Q, K, V, O before the FFN: the modules' execution order
                lin = getattr(parent, name)
                shape = ACMShape(hidden=lin.in_features, intermediate=lin.out_features, learners=learners,
                                 width=linear_width(lin.in_features, lin.out_features, learners),
                                 gate_hidden=gate_hidden, activation="identity", gate=gate, kind="linear", min_k=1)
                acm = ACM(shape).to(lin.weight.device, lin.weight.dtype)
                if init == "slices":
                    _init_from_linear(acm, lin)
                setattr(parent, name, acm.train(lin.training))
            if convert == "attention":
                continue
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


@torch.no_grad()
def _init_from_linear(acm: ACM, lin: nn.Linear) -> None:
    """Learner j = singular directions j·r … (j+1)·r − 1 of the projection's weight, √S on each
    side; learner 1 carries the bias. Directions beyond the weight's rank leave w1 as drawn and
    w2 zero: silent at the start, yet trainable."""
    u, sv, vh = torch.linalg.svd(lin.weight.double(), full_matrices=False)  # W = U·diag(S)·Vh, d_out×d_in
    root = sv.sqrt()
    a = (vh.T * root).to(acm.w1.dtype)  # d_in × rank
    b = (u * root).T.to(acm.w2.dtype)  # rank × d_out
    w = acm.shape.width
    for j in range(acm.learners):
        lo, hi = min(j * w, len(sv)), min((j + 1) * w, len(sv))
        acm.w1[j, :, :hi - lo].copy_(a[:, lo:hi])
        acm.w2[j].zero_()
        acm.w2[j, :hi - lo].copy_(b[lo:hi])
        acm.b1[j].zero_()
        acm.b2[j].zero_()
    if lin.bias is not None:
        acm.b2[0].copy_(lin.bias)


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
    """FLOPs per real token that the ACMs ran since :func:`reset_flops`, summed over layers
    and ACMs (FFN blocks and attention projections alike), and the FLOPs per token of the
    dense blocks and projections they replace, for comparison."""
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
