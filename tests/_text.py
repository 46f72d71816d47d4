"""Shared helpers of the text tests: a tiny tokenizer, a tiny BERT teacher, prose of its words."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest


def need(module: str):
    """Import an ``nlp``-extra module; missing: skipped here, a failure under CI (which installs it)."""
    try:
        return __import__(module)
    except ImportError:
        message = f"{module} is not installed (pip install searchkd[nlp])"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


WORDS = "the a is of to and in it that sentence python statement value".split()


def write_tokenizer(d) -> int:
    """A WordPiece vocabulary that spells any lower-case ASCII word; returns its size."""
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars), *WORDS]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    return len(vocab)


def write_text_setup(root: Path, paragraphs: int, sentences: int = 5, max_positions: int = 128,
                     shape: tuple[int, int, int, int] = (2, 32, 4, 64)) -> tuple[Path, Path]:
    """A BERT teacher of ``shape`` = (layers, hidden, heads, ffn) (default 2 layers, hidden 32,
    4 heads, random weights) saved as a Hugging Face directory ``root/teacher``, and
    ``root/prose.txt`` of seeded sentences of its words."""
    need("transformers")
    import torch
    from transformers import BertConfig, BertModel

    tdir = root / "teacher"
    tdir.mkdir(parents=True)
    layers, hidden, heads, ffn = shape
    config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
                        vocab_size=write_tokenizer(tdir), max_position_embeddings=max_positions,
                        attn_implementation="eager")
    torch.manual_seed(0)
    BertModel(config).save_pretrained(tdir)
    g = np.random.default_rng(0)
    text = [" ".join(" ".join(g.choice(WORDS, size=8)).capitalize() + "." for _ in range(sentences))
            for _ in range(paragraphs)]
    prose = root / "prose.txt"
    prose.write_text("\n\n".join(text) + "\n")
    return tdir, prose
