"""A plain-torch BERT encoder (Devlin et al. 2019) that can also run as a sliced subnet of a
larger one, the weight-sharing scheme of AutoDistil (Xu et al., NeurIPS 2022) and DynaBERT.

:class:`BertNet` is transformers' ``BertModel`` (word + position + token-type embeddings,
LayerNorm, post-LN layers with a GELU feed-forward block, optional tanh pooler) with one
freedom more: the Q/K/V width ``heads × head_dim`` need not equal ``hidden``. Parameter
names follow ``BertModel`` (``embeddings.word_embeddings.weight``,
``encoder.layer.0.attention.self.query.weight``, ``encoder.layer.0.output.LayerNorm.bias``,
``pooler.dense.weight`` …) so that an exporter maps them one to one.

Slicing: a net built at the largest shape runs any smaller :class:`BertShape`:

* layers: ``depth`` of the net's ``N`` layers, evenly spaced, layer ``⌊i·N/depth⌋`` for
  ``i < depth`` (:func:`kept_layers`), AutoDistil's rule (their ``modeling_bert.py``:
  ``floor(i / depth_mult)``, ``depth_mult = depth / N``); the last of them is never layer
  ``N − 1`` unless ``depth = N``, as there;
* hidden: the first ``hidden`` columns of the embeddings and of every matrix reading the
  hidden state, the first ``hidden`` rows of every matrix writing it, LayerNorms over the
  first ``hidden`` dims with their first weights;
* heads (``head_slicing="aligned"``, the default): the first ``heads`` of the net's heads,
  and of each the first ``head_dim`` of its ``N_head_dim`` rows of Q/K/V (and columns of
  the attention output), so a subnet's head ``i`` is a part of the net's head ``i`` even
  when its ``head_dim`` (``hidden // 12`` in the BERT spaces) is smaller. AutoDistil's own
  supernet keeps every head 64 wide; with ``head_dim`` following ``hidden`` this is the
  nearest cut. ``"leading"``: the first ``heads × head_dim`` rows, re-split with the
  subnet's ``head_dim`` (head ``i`` = rows ``[i·head_dim, (i+1)·head_dim)``, which mixes the
  net's heads when ``head_dim`` differs); kept for the measurement that chose ``aligned``
  (``benchmarks/bert_init.py``, docs/benchmarks.md);
* the first ``ffn`` units of the feed-forward block.

:func:`extract` copies exactly those slices, so the extracted model computes what the
sliced forward computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BertShape", "BertNetConfig", "BertNet", "BertClassifier", "EncoderOutput", "MatMul", "extract", "hook_macs",
           "kept_layers", "qkv_rows", "HEAD_SLICINGS"]

#: how a subnet's heads are cut from the net's (see the module docstring)
HEAD_SLICINGS = ("aligned", "leading")


@dataclass(frozen=True)
class BertShape:
    """The sizes of one encoder: ``qkv = heads × head_dim`` is the Q/K/V width."""

    layers: int
    hidden: int
    heads: int
    head_dim: int
    ffn: int

    @property
    def qkv(self) -> int:
        return self.heads * self.head_dim

    def fits_in(self, other: "BertShape") -> bool:
        """Whether this shape is a leading block of ``other`` (can run sliced from it)."""
        return (self.layers <= other.layers and self.hidden <= other.hidden and self.qkv <= other.qkv
                and self.ffn <= other.ffn)


@dataclass(frozen=True)
class BertNetConfig:
    """Everything that fixes a :class:`BertNet` besides its weights (``BertConfig``'s defaults)."""

    shape: BertShape
    vocab_size: int = 30522
    max_position: int = 512
    type_vocab: int = 2
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1
    pooler: bool = True
    head_slicing: str = "aligned"


def kept_layers(total: int, depth: int) -> list[int]:
    """The layers a ``depth``-layer subnet of a ``total``-layer net runs: ``⌊i·total/depth⌋``."""
    if not 1 <= depth <= total:
        raise ValueError(f"a subnet of {depth} layers does not fit in {total}")
    return [(i * total) // depth for i in range(depth)]


def qkv_rows(full: BertShape, s: BertShape, rule: str = "aligned") -> torch.Tensor | None:
    """The rows of the net's Q/K/V (and columns of its attention output) that shape ``s``
    uses, in order; None when they are the leading ``s.qkv`` rows."""
    if rule not in HEAD_SLICINGS:
        raise ValueError(f"unknown head slicing {rule!r} (known: {', '.join(HEAD_SLICINGS)})")
    if rule == "leading" or s.head_dim == full.head_dim:
        return None
    return (torch.arange(s.heads)[:, None] * full.head_dim + torch.arange(s.head_dim)[None]).reshape(-1)


@dataclass
class EncoderOutput:
    """``last_hidden_state`` (B×T×hidden); ``pooler_output`` (B×hidden, None without pooler);
    ``q``, ``k``, ``v``: the last layer's projections (B×T×qkv), for relation distillation;
    ``last_input`` (B×T×hidden): the hidden state the last layer reads (its Q/K/V's input),
    the deepest state a last-layer relation loss trains: the last layer's attention output
    and feed-forward block get no gradient from it."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor | None
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    last_input: torch.Tensor


class MatMul(nn.Module):
    """``a @ b`` as a module, so that a FLOPs counter can hook the attention products."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


def _linear(m: nn.Linear, x: torch.Tensor, out: int, inp: int) -> torch.Tensor:
    if (out, inp) == (m.out_features, m.in_features):
        return m(x)  # a module call at full size, so that hooks (FLOPs counters) see it
    return F.linear(x, m.weight[:out, :inp], m.bias[:out] if m.bias is not None else None)


def _norm(m: nn.LayerNorm, x: torch.Tensor, n: int) -> torch.Tensor:
    return F.layer_norm(x, (n,), m.weight[:n], m.bias[:n], m.eps)


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertNetConfig) -> None:
        super().__init__()
        h = c.shape.hidden
        self.word_embeddings = nn.Embedding(c.vocab_size, h, padding_idx=0)
        self.position_embeddings = nn.Embedding(c.max_position, h)
        self.token_type_embeddings = nn.Embedding(c.type_vocab, h)
        self.LayerNorm = nn.LayerNorm(h, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, ids: torch.Tensor, token_type_ids: torch.Tensor, s: BertShape) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        pad = self.word_embeddings.padding_idx
        x = (F.embedding(ids, self.word_embeddings.weight[:, :s.hidden], padding_idx=pad)
             + F.embedding(pos, self.position_embeddings.weight[:, :s.hidden])[None]
             + F.embedding(token_type_ids, self.token_type_embeddings.weight[:, :s.hidden]))
        return self.dropout(_norm(self.LayerNorm, x, s.hidden))


class BertSelfAttention(nn.Module):
    def __init__(self, c: BertNetConfig) -> None:
        super().__init__()
        s = c.shape
        self.query = nn.Linear(s.hidden, s.qkv)
        self.key = nn.Linear(s.hidden, s.qkv)
        self.value = nn.Linear(s.hidden, s.qkv)
        self.scores = MatMul()
        self.context = MatMul()
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, s: BertShape,
                rows: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if rows is None:
            q, k, v = (_linear(m, x, s.qkv, s.hidden) for m in (self.query, self.key, self.value))
        else:
            q, k, v = (F.linear(x, m.weight[rows, :s.hidden], m.bias[rows]) for m in (self.query, self.key, self.value))
        b, t = x.shape[:2]

        def heads(z: torch.Tensor) -> torch.Tensor:
            return z.view(b, t, s.heads, s.head_dim).transpose(1, 2)

        scores = self.scores(heads(q), heads(k).transpose(-1, -2)) / math.sqrt(s.head_dim)
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)  # padding keys
        probs = self.dropout(scores.softmax(-1))
        ctx = self.context(probs, heads(v)).transpose(1, 2).reshape(b, t, s.qkv)
        return ctx, q, k, v


class BertSelfOutput(nn.Module):
    def __init__(self, c: BertNetConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.shape.qkv, c.shape.hidden)
        self.LayerNorm = nn.LayerNorm(c.shape.hidden, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, ctx: torch.Tensor, x: torch.Tensor, s: BertShape, rows: torch.Tensor | None = None) -> torch.Tensor:
        out = (_linear(self.dense, ctx, s.hidden, s.qkv) if rows is None
               else F.linear(ctx, self.dense.weight[:s.hidden, rows], self.dense.bias[:s.hidden]))
        return _norm(self.LayerNorm, self.dropout(out) + x, s.hidden)


class BertAttention(nn.Module):
    def __init__(self, c: BertNetConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertNetConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.shape.hidden, c.shape.ffn)


class BertOutput(nn.Module):
    def __init__(self, c: BertNetConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.shape.ffn, c.shape.hidden)
        self.LayerNorm = nn.LayerNorm(c.shape.hidden, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.dropout)


class BertLayer(nn.Module):
    def __init__(self, c: BertNetConfig) -> None:
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, s: BertShape,
                rows: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        ctx, q, k, v = self.attention.self(x, keep, s, rows)
        x = self.attention.output(ctx, x, s, rows)
        h = F.gelu(_linear(self.intermediate.dense, x, s.ffn, s.hidden))
        out = self.output
        x = _norm(out.LayerNorm, out.dropout(_linear(out.dense, h, s.hidden, s.ffn)) + x, s.hidden)
        return x, q, k, v


class BertEncoder(nn.Module):
    def __init__(self, c: BertNetConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.shape.layers))


class BertPooler(nn.Module):
    def __init__(self, c: BertNetConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.shape.hidden, c.shape.hidden)


class BertNet(nn.Module):
    """transformers' ``BertModel`` in plain torch, runnable as any :class:`BertShape` that
    fits in its own (see the module docstring for how the weights are sliced)."""

    def __init__(self, config: BertNetConfig) -> None:
        super().__init__()
        s = config.shape
        if min(s.layers, s.hidden, s.heads, s.head_dim, s.ffn) < 1:
            raise ValueError(f"every size of a BertShape must be positive, got {s}")
        self.config = config
        self.active: BertShape | None = None
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if config.pooler else None
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        # BERT's initialisation (transformers' BertPreTrainedModel._init_weights)
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def set_active(self, shape: BertShape | None) -> None:
        """Run as ``shape`` from now on (None: the full shape)."""
        self.active = self._check(shape)

    def _check(self, shape: BertShape | None) -> BertShape | None:
        if shape is not None and not shape.fits_in(self.config.shape):
            raise ValueError(f"shape {shape} does not fit in this net's {self.config.shape}")
        return shape

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, active: BertShape | None = None) -> EncoderOutput:
        """Encode ``input_ids`` (B×T) as ``active`` (default: :meth:`set_active`'s, else full);
        ``attention_mask`` is 1 for tokens, 0 for padding."""
        s = self._check(active) or self.active or self.config.shape
        if input_ids.shape[1] > self.config.max_position:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds max_position {self.config.max_position}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        keep = attention_mask.bool()[:, None, None, :]
        x = self.embeddings(input_ids, token_type_ids, s)
        full = self.config.shape
        rows = qkv_rows(full, s, self.config.head_slicing)
        rows = rows.to(x.device) if rows is not None else None
        for i in kept_layers(full.layers, s.layers):
            last_input = x
            x, q, k, v = self.encoder.layer[i](x, keep, s, rows)
        pooled = None
        if self.pooler is not None:
            pooled = torch.tanh(_linear(self.pooler.dense, x[:, 0], s.hidden, s.hidden))
        return EncoderOutput(x, pooled, q, k, v, last_input)


class BertClassifier(nn.Module):
    """``BertForSequenceClassification``: a :class:`BertNet` (``bert``), dropout, and a linear
    ``classifier`` on the pooled [CLS] state (none when ``num_classes`` is 0)."""

    def __init__(self, config: BertNetConfig, num_classes: int) -> None:
        super().__init__()
        self.bert = BertNet(replace(config, pooler=True))
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.shape.hidden, num_classes) if num_classes > 0 else None
        if self.classifier is not None:
            BertNet._init(self.classifier)

    def forward_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                         token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden states, B×T×hidden."""
        return self.bert(input_ids, attention_mask, token_type_ids).last_hidden_state

    def forward_head(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise ValueError("this BertClassifier was built with num_classes=0: it has no classifier")
        return self.classifier(self.dropout(pooled))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.bert(input_ids, attention_mask, token_type_ids).pooler_output)


def extract(net: BertNet, shape: BertShape) -> BertNet:
    """A standalone :class:`BertNet` of ``shape`` holding copies of ``net``'s sliced weights
    (same device and dtype); it computes what ``net(…, active=shape)`` computes."""
    net._check(shape)
    p = next(net.parameters())
    with torch.random.fork_rng(devices=[p.device] if p.device.type == "cuda" else []), torch.device(p.device):
        sub = BertNet(replace(net.config, shape=shape, head_slicing="aligned")).to(p.dtype)  # its init is overwritten
    full = net.state_dict()
    layers = kept_layers(net.config.shape.layers, shape.layers)
    rows = qkv_rows(net.config.shape, shape, net.config.head_slicing)
    with torch.no_grad():
        for name, t in sub.state_dict().items():
            parts = name.split(".")
            if name.startswith("encoder.layer."):
                parts[2] = str(layers[int(parts[2])])
            src = full[".".join(parts)]
            if rows is not None and parts[-2] in ("query", "key", "value"):
                src = src.index_select(0, rows.to(src.device))
            elif rows is not None and name.endswith("attention.output.dense.weight"):
                src = src.index_select(1, rows.to(src.device))
            t.copy_(src[tuple(slice(0, n) for n in t.shape)])
    sub.train(net.training)
    return sub


def hook_macs(model: nn.Module, input_ids: torch.Tensor, **kwargs: Any) -> int:
    """Multiply-accumulates of one forward of ``model`` on ``input_ids``, counted by hooks:
    every ``nn.Linear`` (``out × (in + 1)`` with a bias, as :func:`searchkd.spaces.count_cost`
    counts) and every :class:`MatMul` (the attention scores and context). Embedding lookups,
    LayerNorm, softmax and GELU are not counted."""
    total = [0]

    def linear(m: nn.Linear, inp: Any, out: torch.Tensor) -> None:
        total[0] += out.numel() * (inp[0].shape[-1] + (1 if m.bias is not None else 0))

    def matmul(m: MatMul, inp: Any, out: torch.Tensor) -> None:
        total[0] += out.numel() * inp[0].shape[-1]

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear))
        elif isinstance(m, MatMul):
            handles.append(m.register_forward_hook(matmul))
    try:
        with torch.no_grad():
            model(input_ids, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return total[0]
