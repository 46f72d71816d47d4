"""AutoDistil's three BERT student sub-spaces (Xu et al., "AutoDistil: Few-shot Task-agnostic
Neural Architecture Search for Distilling Large Language Models", NeurIPS 2022, §3.1).

An arch is ``L{layers}-H{hidden}-A{heads}-R{mlp_ratio}``, e.g. ``L4-H128-A7-R2.0``. Each
sub-space takes 4 values per dimension (256 archs), as in AutoDistil's
``KD_wiki_book_Seqlen128_PreModel_RndSampl_{Tiny,Small,Base}_256Subs.yaml``:

=========  ======  =========  =====  =============
space      layers  hidden     heads  mlp ratio
=========  ======  =========  =====  =============
bert-tiny  4–7     128–224/32  7–10  2.0–3.5/0.5
bert-small 9–12    256–352/32  7–10  2.5–4.0/0.5
bert-base  9–12    544–640/32  9–12  2.5–4.0/0.5
=========  ======  =========  =====  =============

Q/K/V width: ``heads × hidden/12`` (CONTRACT). AutoDistil's parameter formula uses that width
real-valued; a network needs whole heads, so here ``head_dim = hidden // 12`` (floor, as
``int(hidden_size / num_attention_heads)`` in their modelling code) and ``qkv = heads ×
head_dim``; ``L12-H768-A12-R4.0`` is BERT-base and ``L6-H384-A12-R4.0`` MiniLM-L6-H384 exactly.
Departure: AutoDistil's own supernet is a sliced BERT-base whose heads stay 64 wide whatever
the hidden size; its parameter formula (and this space) assume ``hidden/12``.

Costs (:meth:`BertSpace.cost`): ``params`` is the exact parameter count of the built encoder
(transformers' ``BertModel`` with pooler: embeddings for 30,522 tokens, 512 positions and 2
token types, LayerNorms, biases); ``flops`` the multiply-accumulates per token of one
sequence of 128 tokens. AutoDistil's published size ranges come from a rougher formula,
:func:`autodistil_params`, which reproduces all six of them exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from searchkd.errors import SearchKDError
from searchkd.registry import SPACES
from searchkd.spaces.base import SearchSpace, as_rng

__all__ = ["BertArch", "BertSpace", "parse_arch", "autodistil_params", "SEQ_LEN"]

#: the sequence length of the FLOPs count (AutoDistil's pre-training length)
SEQ_LEN = 128
_ARCH = re.compile(r"L(\d+)-H(\d+)-A(\d+)-R(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class BertArch:
    """A parsed ``L…-H…-A…-R…`` arch."""

    layers: int
    hidden: int
    heads: int
    ratio: float

    @property
    def head_dim(self) -> int:
        return self.hidden // 12

    @property
    def qkv(self) -> int:
        return self.heads * self.head_dim

    @property
    def ffn(self) -> int:
        return int(self.hidden * self.ratio)

    def __str__(self) -> str:
        return f"L{self.layers}-H{self.hidden}-A{self.heads}-R{_fmt(self.ratio)}"

    def shape(self) -> Any:
        from searchkd.spaces._bert_net import BertShape

        return BertShape(self.layers, self.hidden, self.heads, self.head_dim, self.ffn)


def _fmt(ratio: float) -> str:
    return f"{ratio:.1f}" if round(ratio, 1) == ratio else f"{ratio:g}"


def parse_arch(arch: Any, space: str = "bert") -> BertArch:
    """``"L4-H128-A7-R2.0"`` → :class:`BertArch`; :class:`SearchKDError` when malformed."""
    m = _ARCH.fullmatch(arch) if isinstance(arch, str) else None
    if m is None:
        raise SearchKDError(f"{space}: malformed arch {arch!r}: expected L{{layers}}-H{{hidden}}-A{{heads}}-R{{mlp_ratio}}, "
                            "e.g. L4-H128-A7-R2.0")
    a = BertArch(int(m[1]), int(m[2]), int(m[3]), float(m[4]))
    if min(a.layers, a.heads) < 1 or a.hidden < 12 or a.ffn < 1 or a.hidden * a.ratio != a.ffn:
        raise SearchKDError(f"{space}: {arch!r} is not a network: it needs layers and heads >= 1, hidden >= 12 "
                            "(head size hidden // 12) and a whole number of feed-forward units hidden × ratio")
    return a


def autodistil_params(arch: BertArch, vocab_size: int = 30522) -> int:
    """AutoDistil's parameter count (``cal_para_bert`` of their run_wiki_plus_book_NoAssist_RndSampl.py
    as it produced the ranges quoted in their yaml files):
    ``30522·H + L·⌊4·A·H²/12⌋ + L·2·R·H² + 2·H²`` — word embeddings, Q/K/V/O of width
    ``A·H/12`` floored per layer (their ``//``), the feed-forward matrices, and ``2·H²`` for the
    pooler and prediction head; no biases, LayerNorms, position or token-type embeddings.
    It gives 4,354,644–10,566,675 (tiny), 12,270,077–27,842,492 (small), 38,503,232–79,335,680 (base)."""
    h = arch.hidden
    return vocab_size * h + arch.layers * ((4 * arch.heads * h * h) // 12) + arch.layers * int(2 * arch.ratio * h * h) + 2 * h * h


class BertSpace(SearchSpace):
    """BERT encoders ``L…-H…-A…-R…`` over a grid of layers × hidden × heads × ratio.

    The registered sub-spaces fix the grid; other grids (small test spaces) are made by
    passing ``layers``, ``hidden``, ``heads``, ``ratios`` and, for tiny vocabularies,
    ``vocab_size``/``max_position``.
    """

    name = "bert"
    description = "BERT encoders L-H-A-R (AutoDistil sub-spaces)"
    default_teacher = "minilm-l6"
    #: students take token ids (B×T) and an attention mask, not images
    modality = "text"
    LAYERS: tuple[int, ...] = ()
    HIDDEN: tuple[int, ...] = ()
    HEADS: tuple[int, ...] = ()
    RATIOS: tuple[float, ...] = ()

    def __init__(self, *, layers: Sequence[int] | None = None, hidden: Sequence[int] | None = None,
                 heads: Sequence[int] | None = None, ratios: Sequence[float] | None = None, name: str | None = None,
                 vocab_size: int = 30522, max_position: int = 512, type_vocab: int = 2) -> None:
        self.choices = tuple(tuple(sorted(c)) for c in (layers or self.LAYERS, hidden or self.HIDDEN,
                                                        heads or self.HEADS, ratios or self.RATIOS))
        if not all(self.choices):
            raise SearchKDError("bert: a space needs at least one value of layers, hidden, heads and ratios")
        self.name = name or self.name
        self.vocab_size, self.max_position, self.type_vocab = vocab_size, max_position, type_vocab
        for a in (self.smallest(), self.largest()):
            parse_arch(str(a), self.name)

    # ---- the grid -------------------------------------------------------------------------
    def bounds(self) -> list[int]:
        return [len(c) for c in self.choices]

    def sample(self, rng: np.random.Generator | int | None = None) -> str:
        rng = as_rng(rng)
        return self.decode([int(rng.integers(b)) for b in self.bounds()])

    def encode(self, arch: str) -> list[int]:
        a = parse_arch(arch, self.name)
        vals = (a.layers, a.hidden, a.heads, a.ratio)
        if any(v not in c for v, c in zip(vals, self.choices)):
            raise SearchKDError(f"{self.name}: {arch!r} is outside the sub-space ({self.ranges()})")
        return [c.index(v) for v, c in zip(vals, self.choices)]

    def decode(self, vec: Any) -> str:
        v = self._check_vec(vec)
        return str(BertArch(*(c[i] for c, i in zip(self.choices, v))))

    def ranges(self) -> str:
        names = ("layers", "hidden", "heads", "ratio")
        return ", ".join(f"{n} {' '.join(map(str, c))}" for n, c in zip(names, self.choices))

    def smallest(self) -> BertArch:
        return BertArch(*(c[0] for c in self.choices))

    def largest(self) -> BertArch:
        return BertArch(*(c[-1] for c in self.choices))

    def arch(self, arch: str | BertArch) -> BertArch:
        """``arch`` parsed and checked to lie in the space."""
        self.encode(str(arch))
        return arch if isinstance(arch, BertArch) else parse_arch(arch, self.name)

    # ---- networks -------------------------------------------------------------------------
    def net_config(self, arch: str | BertArch, *, pooler: bool = True, dropout: float = 0.1) -> Any:
        """The :class:`~searchkd.spaces._bert_net.BertNetConfig` of any well-formed arch (also
        outside the grid, e.g. a teacher's ``L12-H768-A12-R4.0``)."""
        from searchkd.spaces._bert_net import BertNetConfig

        a = arch if isinstance(arch, BertArch) else parse_arch(arch, self.name)
        return BertNetConfig(a.shape(), vocab_size=self.vocab_size, max_position=self.max_position,
                             type_vocab=self.type_vocab, dropout=dropout, pooler=pooler)

    def build(self, arch: str, num_classes: int = 10) -> Any:
        """A standalone ``BertForSequenceClassification``-like student (:class:`BertClassifier`:
        ``bert`` + ``classifier``; ``forward_features`` gives the last hidden states). Any
        well-formed arch builds; ``num_classes=0`` leaves the classifier out."""
        from searchkd.spaces._bert_net import BertClassifier

        return BertClassifier(self.net_config(arch), num_classes)

    def example_input(self, batch_size: int = 2, seq_len: int = 16, seed: int = 0) -> tuple[Any, Any]:
        """Random ``(input_ids, attention_mask)`` a built student runs on (the last sequence padded)."""
        import torch

        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(1, self.vocab_size, (batch_size, seq_len), generator=g)
        mask = torch.ones_like(ids)
        mask[-1, seq_len // 2:] = 0
        return ids * mask, mask

    def cost(self, arch: str, num_classes: int = 0, seq_len: int = SEQ_LEN) -> dict[str, float]:
        """Exact parameters (M) of :meth:`build` ``(arch, num_classes)`` (default: the encoder
        with pooler, no classifier) and FLOPs (M) per token of one ``seq_len``-token sequence:
        the multiply-accumulates of every linear layer (``out × (in + 1)``), of the attention
        scores ``QKᵀ`` and context ``PV`` (``T × qkv`` each per token); the pooler and
        classifier, which see the [CLS] token only, once per sequence. Embedding lookups,
        LayerNorm, softmax and GELU are not counted. Equal to hook counts (see tests)."""
        a = parse_arch(arch, self.name)
        h, q, f, t = a.hidden, a.qkv, a.ffn, seq_len
        layer_params = 4 * h * q + 3 * q + 2 * h * f + f + 6 * h
        params = ((self.vocab_size + self.max_position + self.type_vocab) * h + 2 * h + a.layers * layer_params
                  + h * h + h + num_classes * (h + 1))
        layer_macs = 3 * q * (h + 1) + h * (q + 1) + 2 * t * q + f * (h + 1) + h * (f + 1)
        macs = a.layers * layer_macs + (h * (h + 1) + num_classes * (h + 1)) / t
        return {"params": params / 1e6, "flops": macs / 1e6}

    def autodistil_params(self, arch: str) -> float:
        """AutoDistil's count of ``arch`` in millions (see :func:`autodistil_params`)."""
        return autodistil_params(parse_arch(arch, self.name), self.vocab_size) / 1e6


class BertTinySpace(BertSpace):
    """AutoDistil-Tiny: layers 4–7, hidden 128–224, heads 7–10, MLP ratio 2.0–3.5."""

    name = "bert-tiny"
    description = "AutoDistil tiny BERT students L4-7, H128-224, A7-10, R2.0-3.5 (256 archs)"
    LAYERS, HIDDEN, HEADS, RATIOS = (4, 5, 6, 7), (128, 160, 192, 224), (7, 8, 9, 10), (2.0, 2.5, 3.0, 3.5)


class BertSmallSpace(BertSpace):
    """AutoDistil-Small: layers 9–12, hidden 256–352, heads 7–10, MLP ratio 2.5–4.0."""

    name = "bert-small"
    description = "AutoDistil small BERT students L9-12, H256-352, A7-10, R2.5-4.0 (256 archs)"
    default_teacher = ""  # minilm-l6 (22.7 M) is smaller than these students: --teacher hf:DIR is required
    LAYERS, HIDDEN, HEADS, RATIOS = (9, 10, 11, 12), (256, 288, 320, 352), (7, 8, 9, 10), (2.5, 3.0, 3.5, 4.0)


class BertBaseSpace(BertSpace):
    """AutoDistil-Base: layers 9–12, hidden 544–640, heads 9–12, MLP ratio 2.5–4.0."""

    name = "bert-base"
    description = "AutoDistil base BERT students L9-12, H544-640, A9-12, R2.5-4.0 (256 archs)"
    default_teacher = ""  # minilm-l6 (22.7 M) is smaller than these students: --teacher hf:DIR is required
    LAYERS, HIDDEN, HEADS, RATIOS = (9, 10, 11, 12), (544, 576, 608, 640), (9, 10, 11, 12), (2.5, 3.0, 3.5, 4.0)


for _cls in (BertTinySpace, BertSmallSpace, BertBaseSpace):
    SPACES.register(_cls.name, _cls, description=_cls.description)
