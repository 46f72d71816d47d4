"""A BERT encoder whose attention heads are narrower (or wider) than ``hidden_size / heads``.

This file is copied, as ``modeling_searchkd_bert.py``, into every Hugging Face directory that
searchkd exports for a student a stock ``BertConfig`` cannot describe, and is loaded from there
by ``AutoModel.from_pretrained(dir, trust_remote_code=True)``. It therefore imports nothing
but torch and transformers (5.x): searchkd need not be installed to use an exported student.

The model is transformers' ``BertModel`` with one freedom more, ``attention_head_size``: the
self-attention's query, key and value map ``hidden_size → num_attention_heads ×
attention_head_size`` and the attention output dense maps that width back to ``hidden_size``.
With ``attention_head_size = hidden_size / num_attention_heads`` it is ``BertModel`` exactly.
Everything else — embeddings, post-LN layers, feed-forward block, pooler, the attention
kernels (eager, sdpa …) and the parameter names — is ``BertModel``'s own code.

How: ``BertSelfAttention.forward`` only reads ``attention_head_size`` (to split the
projections into heads), ``scaling`` and the Q/K/V modules; it never assumes
``num_heads × head_size == hidden_size``. Its ``__init__`` does (it refuses a ``hidden_size``
that the heads do not divide and sizes Q/K/V ``hidden → hidden``), and so does
``BertSelfOutput``'s dense layer. So :class:`SearchKDBertModel` (and
:class:`SearchKDBertForSequenceClassification`, to fine-tune a student on a task) builds the
stock model with one head per layer (a shape every hidden size allows), then swaps in, per layer, a
:class:`SearchKDBertSelfAttention` (``BertSelfAttention``'s own ``__init__``, run on a view
of the config whose ``hidden_size`` is the Q/K/V width, with Q/K/V re-made to read
``hidden_size``) and a ``heads × head_size → hidden`` attention output dense. Encoders only:
decoder and cross-attention configurations are refused.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertForSequenceClassification, BertModel, BertSelfAttention

__all__ = ["SearchKDBertConfig", "SearchKDBertModel", "SearchKDBertForSequenceClassification", "SearchKDBertSelfAttention",
           "MODEL_TYPE"]

MODEL_TYPE = "searchkd_bert"


@strict
class SearchKDBertConfig(BertConfig):
    """``BertConfig`` plus ``attention_head_size`` (default ``hidden_size // num_attention_heads``)."""

    model_type = MODEL_TYPE

    attention_head_size: int | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if self.attention_head_size is None:
            self.attention_head_size = self.hidden_size // self.num_attention_heads
        super().__post_init__(**kwargs)

    def validate_searchkd_bert(self) -> None:
        """Part of transformers' ``@strict`` validation: a positive head size, an encoder."""
        if not (isinstance(self.attention_head_size, int) and self.attention_head_size >= 1):
            raise ValueError(f"attention_head_size must be a positive int, got {self.attention_head_size!r}")
        if self.is_decoder or self.add_cross_attention:
            raise ValueError("searchkd_bert is an encoder: is_decoder and add_cross_attention must be False")

    @property
    def all_head_size(self) -> int:
        """The query/key/value width, ``num_attention_heads × attention_head_size``."""
        return self.num_attention_heads * self.attention_head_size


@contextmanager
def _fields(config: BertConfig, **values: Any) -> Iterator[None]:
    """Some of ``config``'s fields set to ``values`` for the ``with`` block, restored after (the
    block is the constructor of a module of the model that owns ``config``)."""
    saved = {k: getattr(config, k) for k in values}
    try:
        for k, v in values.items():
            setattr(config, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(config, k, v)


class SearchKDBertSelfAttention(BertSelfAttention):
    """``BertSelfAttention`` with Q/K/V ``hidden_size → num_attention_heads × attention_head_size``."""

    def __init__(self, config: SearchKDBertConfig, is_causal: bool = False, layer_idx: int | None = None) -> None:
        with _fields(config, hidden_size=config.all_head_size):  # sets head size, all_head_size, scaling
            super().__init__(config, is_causal=is_causal, layer_idx=layer_idx)
        if (self.attention_head_size, self.all_head_size) != (config.attention_head_size, config.all_head_size):
            raise RuntimeError(f"this transformers' BertSelfAttention sizes its heads differently "
                               f"({self.attention_head_size}, not {config.attention_head_size})")
        self.config = config
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)


def _widen_attention(encoder: nn.Module, config: SearchKDBertConfig) -> None:
    """Give every layer of a BertEncoder built with one head per layer its real attention."""
    for layer in encoder.layer:
        old = layer.attention.self
        layer.attention.self = SearchKDBertSelfAttention(config, is_causal=old.is_causal, layer_idx=old.layer_idx)
        layer.attention.output.dense = nn.Linear(config.all_head_size, config.hidden_size)


class SearchKDBertModel(BertModel):
    """``BertModel`` whose self-attention is :class:`SearchKDBertSelfAttention` (see the module docstring)."""

    config_class = SearchKDBertConfig

    def __init__(self, config: SearchKDBertConfig, add_pooling_layer: bool = True) -> None:
        with _fields(config, num_attention_heads=1):  # a shape BertSelfAttention accepts; replaced below
            super().__init__(config, add_pooling_layer=add_pooling_layer)
        _widen_attention(self.encoder, config)
        self.post_init()  # BERT's initialisation for the replaced modules too


class SearchKDBertForSequenceClassification(BertForSequenceClassification):
    """``BertForSequenceClassification`` on a :class:`SearchKDBertModel`, to fine-tune a student."""

    config_class = SearchKDBertConfig

    def __init__(self, config: SearchKDBertConfig) -> None:
        with _fields(config, num_attention_heads=1):
            super().__init__(config)
        _widen_attention(self.bert.encoder, config)
        self.post_init()
