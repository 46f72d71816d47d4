"""Initialising a SuperLM (or any :class:`~searchkd.spaces._bert_net.BertNet`) from a
pretrained BERT-family encoder, as AutoDistil's released code does: it loads the SuperLM from
the pretrained teacher's own directory (``run_wiki_plus_book_NoAssist_RndSampl.py``,
``model_class.from_pretrained(args.model_dir)``; Tiny from ELECTRA-base, Small/Base from
BERT-base), whose shape *is* the supernet's there. Here the sub-space's largest shape is
smaller than the pretrained model, so it is cut from it (:func:`cut_pretrained`):

* hidden units: the first ``hidden`` of the embeddings, of every matrix reading or writing
  the hidden state and of the LayerNorms (no reordering; DynaBERT does not shrink hidden);
* layers: supernet layer ``j`` ← pretrained layer ``⌊j·T/N⌋`` (evenly spaced, AutoDistil's
  ``floor(i / depth_mult)`` rule) when the supernet has ``N ≤ T`` layers. When it has more
  (bert-tiny's 7 from MiniLM's 6) the layers that a ``T``-layer subnet runs
  (:func:`~searchkd.spaces._bert_net.kept_layers`) get the pretrained layers in order and each
  other layer a copy of the one before it (:func:`layer_map`), so the ``T``-layer subnet is
  the pretrained stack and deeper ones repeat a layer (declared departure: the reference
  never grows depth);
* heads: the first ``heads`` pretrained heads, each cut to its first ``head_dim`` dims
  (the space's heads are ``hidden // 12`` wide, MiniLM's 32: not an exact cut; the rule and
  the ``leading`` alternative are measured in ``benchmarks/bert_init.py``);
* FFN units: the first ``ffn``.

``reorder=True`` first sorts heads and FFN neurons by importance, as DynaBERT does before
cutting widths (Hou et al., NeurIPS 2020), and the dims inside a head too. Departure: DynaBERT
scores importance by the task loss's sensitivity to a head / neuron mask; with no labels here
the importance is a weight-magnitude proxy (head: ‖W_q‖‖W_k‖ + ‖W_v‖‖W_o‖ of its rows /
columns; neuron: ‖W_in row‖·‖W_out column‖). Reordering is function-preserving at full size.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import torch

from searchkd.spaces._bert_net import BertNet, BertShape, kept_layers

__all__ = ["layer_map", "cut_problem", "cut_pretrained", "pretrained_shape", "cut_net", "resolve_init"]

_LAYER = "encoder.layer.{}."


def layer_map(n: int, t: int) -> list[int]:
    """For each of ``n`` supernet layers, the pretrained layer (of ``t``) it starts from."""
    if n <= t:
        return kept_layers(t, n)
    out: list[int] = [0] * n
    owner = dict(zip(kept_layers(n, t), range(t)))
    for j in range(n):
        out[j] = owner.get(j, out[j - 1] if j else 0)
    return out


def pretrained_shape(model_config: Any) -> BertShape:
    """The :class:`BertShape` of a transformers BERT config (``attention_head_size`` if set)."""
    c = model_config
    head_dim = int(getattr(c, "attention_head_size", 0) or c.hidden_size // c.num_attention_heads)
    return BertShape(int(c.num_hidden_layers), int(c.hidden_size), int(c.num_attention_heads), head_dim,
                     int(c.intermediate_size))


def cut_problem(s: BertShape, t: BertShape, rule: str = "aligned") -> str | None:
    """Why shape ``s`` cannot be cut from a pretrained ``t`` (None: it can; depth may exceed)."""
    wide = [f"{what} {a} > {b}" for what, a, b in (("hidden", s.hidden, t.hidden), ("heads", s.heads, t.heads),
                                                    ("ffn", s.ffn, t.ffn))
            if a > b]
    if rule == "aligned" and s.head_dim > t.head_dim:
        wide.append(f"head size {s.head_dim} > {t.head_dim}")
    if rule == "leading" and s.qkv > t.qkv:
        wide.append(f"Q/K/V width {s.qkv} > {t.qkv}")
    return ", ".join(wide) or None


def _norm(w: torch.Tensor, dim: int) -> torch.Tensor:
    return w.float().norm(dim=dim)


def _orders(state: Mapping[str, torch.Tensor], p: str, t: BertShape, hidden: int,
            reorder: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(head order, dim order for Q/K, dim order for V/O, FFN neuron order) of one layer."""
    a, d = t.heads, t.head_dim
    if not reorder:
        ident = torch.arange(d)
        return torch.arange(a), ident, ident, torch.arange(t.ffn)
    q, k, v = (state[p + f"attention.self.{n}.weight"][:, :hidden].reshape(a, d, hidden) for n in ("query", "key", "value"))
    o = state[p + "attention.output.dense.weight"][:hidden].reshape(hidden, a, d).transpose(0, 1)  # a × hidden × d
    qk = _norm(q, -1) * _norm(k, -1)  # a × d
    vo = _norm(v, -1) * _norm(o, 1)
    heads = (_norm(q.reshape(a, -1), 1) * _norm(k.reshape(a, -1), 1)
             + _norm(v.reshape(a, -1), 1) * _norm(o.reshape(a, -1), 1)).argsort(descending=True, stable=True)
    ffn = (_norm(state[p + "intermediate.dense.weight"][:, :hidden], 1)
           * _norm(state[p + "output.dense.weight"][:hidden], 0)).argsort(descending=True, stable=True)
    # one dim order per kept head would not fit one index; the summed importance orders them all
    return heads, qk.sum(0).argsort(descending=True, stable=True), vo.sum(0).argsort(descending=True, stable=True), ffn


def cut_pretrained(net: BertNet, state: Mapping[str, torch.Tensor], t: BertShape, *, reorder: bool = False) -> None:
    """Overwrite ``net``'s weights (at its full shape) with ``state`` (a transformers
    ``BertModel`` state dict of shape ``t``, same vocabulary) cut as the module docstring says.

    Raises:
        ValueError: the net's shape cannot be cut from ``t`` (:func:`cut_problem`), or another
            vocabulary / fewer positions.
    """
    c = net.config
    s = c.shape
    why = cut_problem(s, t, c.head_slicing)
    if why:
        raise ValueError(f"{s} cannot be cut from the pretrained {t}: {why}")
    emb = state["embeddings.word_embeddings.weight"]
    if emb.shape[0] > c.vocab_size:
        raise ValueError(f"the pretrained model has {emb.shape[0]} tokens, the net only {c.vocab_size}")
    h, mine = s.hidden, net.state_dict()
    new: dict[str, torch.Tensor] = {}
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        # rows the pretrained model lacks (ids its tokenizer never gives, positions past its
        # longest input) keep BERT's init
        key = f"embeddings.{name}.weight"
        rows = min(mine[key].shape[0], state[key].shape[0])
        new[key] = torch.cat([state[key][:rows, :h], mine[key][rows:]])
    for name in ("weight", "bias"):
        new[f"embeddings.LayerNorm.{name}"] = state[f"embeddings.LayerNorm.{name}"][:h]
    for j, src in enumerate(layer_map(s.layers, t.layers)):
        p, q = _LAYER.format(src), _LAYER.format(j)
        heads, dqk, dvo, ffn = _orders(state, p, t, h, reorder)
        if c.head_slicing == "aligned":
            rows_qk = (heads[:s.heads, None] * t.head_dim + dqk[None, :s.head_dim]).reshape(-1)
            rows_vo = (heads[:s.heads, None] * t.head_dim + dvo[None, :s.head_dim]).reshape(-1)
        else:  # the leading rows of the head-reordered matrices
            rows_qk = rows_vo = (heads[:, None] * t.head_dim + torch.arange(t.head_dim)[None]).reshape(-1)[:s.qkv]
        for n, rows in (("query", rows_qk), ("key", rows_qk), ("value", rows_vo)):
            new[q + f"attention.self.{n}.weight"] = state[p + f"attention.self.{n}.weight"][rows, :h]
            new[q + f"attention.self.{n}.bias"] = state[p + f"attention.self.{n}.bias"][rows]
        new[q + "attention.output.dense.weight"] = state[p + "attention.output.dense.weight"][:h][:, rows_vo]
        new[q + "intermediate.dense.weight"] = state[p + "intermediate.dense.weight"][ffn[:s.ffn], :h]
        new[q + "intermediate.dense.bias"] = state[p + "intermediate.dense.bias"][ffn[:s.ffn]]
        new[q + "output.dense.weight"] = state[p + "output.dense.weight"][:h][:, ffn[:s.ffn]]
        for key in ("attention.output.dense.bias", "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
                    "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"):
            new[q + key] = state[p + key][:h]
    if net.pooler is not None and "pooler.dense.weight" in state:
        new["pooler.dense.weight"] = state["pooler.dense.weight"][:h, :h]
        new["pooler.dense.bias"] = state["pooler.dense.bias"][:h]
    with torch.no_grad():
        for key, value in new.items():
            mine[key].copy_(value.to(mine[key].dtype))


def cut_net(config: Any, state: Mapping[str, torch.Tensor], t: BertShape, *, reorder: bool = False,
            shape: BertShape | None = None) -> BertNet:
    """A new :class:`BertNet` of ``config`` (at ``shape`` if given) cut from ``state``: e.g.
    AutoDistil's "truncated teacher" baseline, the pretrained model cut to a student's shape
    with no further training."""
    if shape is not None:
        config = replace(config, shape=shape)
    with torch.random.fork_rng(devices=[]):
        net = BertNet(config)
    cut_pretrained(net, state, t, reorder=reorder)
    return net


def resolve_init(spec: str | None, teacher: Any, space: Any, head_slicing: str = "aligned") -> tuple[str, Any, str | None]:
    """How a search's SuperLM starts: ``(label, (state dict, shape) or None, warning or None)``.

    ``spec`` None (the default): from the teacher when ``space``'s largest shape can be cut from
    it (a BERT layout, the same vocabulary), else BERT's random init with a one-line warning
    saying why; ``"teacher"``: from the teacher or a :class:`SearchKDError`; ``"random"``;
    ``"hf:DIR"``: from that BERT model, which must share the teacher's tokenizer.
    """
    from searchkd.errors import SearchKDError

    if spec == "random":
        return "random", None, None
    if spec is None or spec == "teacher":
        source, label = teacher, "teacher"
    elif isinstance(spec, str) and spec.startswith("hf:"):
        from searchkd.teachers.text import load_text_teacher

        source, label = load_text_teacher(spec), spec
        if source.tokenizer.get_vocab() != teacher.tokenizer.get_vocab():
            raise SearchKDError(f"--init {spec}: its tokenizer is not the teacher's; the SuperLM reads the teacher's "
                                "token ids")
    else:
        raise SearchKDError(f"--init must be teacher, random or hf:DIR, got {spec!r}")
    model = getattr(source.model, "base_model", source.model)
    why = None
    if str(model.config.model_type) not in ("bert", "searchkd_bert"):
        why = f"it is a {model.config.model_type!r} model, not a BERT layout"
    else:
        t = pretrained_shape(model.config)
        why = cut_problem(space.largest().shape(), t, head_slicing)
        if not why and int(model.config.vocab_size) > space.vocab_size:
            why = f"its vocabulary has {model.config.vocab_size} tokens, the space only {space.vocab_size}"
    if why is None:
        return label, ({k: v.detach().cpu() for k, v in model.state_dict().items()}, t), None
    what = source.info.name
    message = f"{space.name}'s largest student {space.largest()} cannot be cut from {what}: {why}"
    if spec is not None:
        raise SearchKDError(f"--init {spec}: {message}")
    return "random", None, f"{message}; the SuperLM starts from BERT's random init (give --init hf:DIR to start " \
                           "from a larger pretrained BERT with the same tokenizer)"
