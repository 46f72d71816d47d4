"""Text for BERT-family distillation: ``embedded-text`` and ``text:PATH``.

``embedded-text`` is the English prose that ships with Python itself: ``pydoc_data.topics``, the
Language Reference as ``help()`` shows it (79 topics, about 65,000 words, of which about 54,000
are prose once code is dropped). ``text:PATH`` is a UTF-8 file, or a folder whose ``.txt`` and
``.md`` files (searched recursively, in sorted order) are read one document each.

How text becomes rows (:func:`prose_paragraphs`, :func:`split_sentences`, :func:`load_text`):

1. Fenced Markdown code (```` ``` ````/``~~~``) and Markdown heading lines are removed, and the
   rest is cut into blocks at blank lines.
2. A block is kept as prose only if it reads like prose: no heading underline, table border,
   ``>>>`` prompt or ``::=`` grammar rule; no line indented more than four columns past the
   first (nested code); its text ends like a sentence (``. ! ? :``, maybe before a quote or
   bracket); and at least 65 % of its non-space characters are letters. Indented prose (the
   reference indents every method description) is kept; list bullets are stripped. For
   ``text:PATH`` a dropped block is not silent: one warning says how many blocks and words
   were dropped (a file of lists, titles or chat loses most of its text here).
3. Prose is cut into sentences after ``. ! ?`` followed by a capital, digit, quote or bracket,
   except after common abbreviations (e.g., i.e., etc., vs., cf.); sentences of fewer than
   three words are dropped.
4. With ``pack=True`` (the default) consecutive sentences of one document share a row while
   they fit in ``max_length`` tokens with the tokenizer's special tokens, as BERT's and
   AutoDistil's pre-training packs text; with ``pack=False`` each sentence is a row. Rows are
   tokenised by the teacher's tokenizer, padded to ``max_length`` (128 by default) with an
   attention mask, and a sentence longer than a row is truncated.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from searchkd.errors import SearchKDError

__all__ = ["TextSet", "load_text", "read_documents", "prose_paragraphs", "split_sentences", "is_text_data",
           "TEXT_DATA_FORMS", "text_split", "HELD_OUT"]

#: held-out fraction of a search's text: the SuperLM trains on the rest and scores on it
HELD_OUT = 0.1

TEXT_DATA_FORMS = "embedded-text, text:PATH (a UTF-8 file or a folder of .txt/.md files)"
_TEXT_SUFFIXES = {".txt", ".md"}
_UNDERLINE = re.compile(r"^\s*([*=\-~^#+`_])\1{2,}\s*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.M | re.S)
_MD_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t].*$", re.M)
_ENDS_SENTENCE = re.compile(r"[.!?:][\"')\]*]*$")
_BULLET = re.compile(r"^\s*(?:[*+\-]|\d+[.)])\s+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[*]?[A-Z0-9])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "Mr.", "Mrs.", "Dr.", "St.", "No.", "Fig.")


def is_text_data(spec: str) -> bool:
    """Whether a ``--data`` spec names text (``embedded-text`` or ``text:PATH``)."""
    return isinstance(spec, str) and (spec == "embedded-text" or spec.startswith("text:"))


@dataclass(frozen=True)
class TextSet:
    """Token rows for a BERT-family teacher: ``input_ids`` and ``attention_mask`` (int64 N×L,
    1 = token, 0 = padding), the text of each row (one or more consecutive sentences) and a name."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    sentences: tuple[str, ...]
    name: str

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def max_length(self) -> int:
        return int(self.input_ids.shape[1])

    def subset(self, idx: np.ndarray, name: str | None = None) -> "TextSet":
        idx = np.asarray(idx, dtype=np.int64)
        return TextSet(self.input_ids[idx], self.attention_mask[idx], tuple(self.sentences[i] for i in idx),
                       name or self.name)

    def split(self, held_out: float = 0.1, seed: int = 0) -> tuple["TextSet", "TextSet"]:
        """A seeded (train, held-out) split with ``round(held_out × N)`` rows held out."""
        if not 0.0 < held_out < 1.0:
            raise SearchKDError(f"held-out fraction must be in (0, 1), got {held_out}")
        n = len(self)
        n_test = int(math.floor(n * held_out + 0.5))
        if n_test < 1 or n_test >= n:
            need = max(2, math.ceil(0.5 / held_out))
            raise SearchKDError(f"{self.name} is too short: {n} rows cannot hold out {held_out:.0%} "
                                f"(needs at least {need} rows; add text or change the held-out fraction)")
        order = np.random.default_rng(seed).permutation(n)
        test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
        return self.subset(train, self.name + "[train]"), self.subset(test, self.name + "[held-out]")

    def tensors(self, idx: Sequence[int] | np.ndarray, device: Any = None) -> tuple[Any, Any]:
        """``(input_ids, attention_mask)`` int64 tensors of the rows ``idx``."""
        import torch

        idx = np.asarray(idx, dtype=np.int64)
        ids, mask = torch.from_numpy(self.input_ids[idx]), torch.from_numpy(self.attention_mask[idx])
        return (ids, mask) if device is None else (ids.to(device), mask.to(device))

    def batches(self, batch_size: int, seed: int = 0, device: Any = None,
                drop_last: bool = False) -> Iterator[tuple[Any, Any]]:
        """One epoch of ``(input_ids, attention_mask)`` batches in a seeded order."""
        self._check_batch_size(batch_size, at_most=None)
        order = np.random.default_rng(seed).permutation(len(self))
        stop = len(order) - len(order) % batch_size if drop_last else len(order)
        for start in range(0, stop, batch_size):
            yield self.tensors(order[start:start + batch_size], device)

    def batch(self, batch_size: int = 64, seed: int = 0, device: Any = None) -> tuple[Any, Any]:
        """``batch_size`` distinct rows, the same for the same seed (a zero-cost proxy's batch)."""
        self._check_batch_size(batch_size, at_most=len(self))
        return self.tensors(np.random.default_rng(seed).permutation(len(self))[:batch_size], device)

    def _check_batch_size(self, batch_size: int, at_most: int | None) -> None:
        if batch_size <= 0:
            raise SearchKDError(f"batch size must be positive, got {batch_size}")
        if at_most is not None and batch_size > at_most:
            raise SearchKDError(f"batch size {batch_size} exceeds the {at_most} rows of {self.name}")


def _is_prose(lines: list[str]) -> str | None:
    if any(_UNDERLINE.match(s) or s.lstrip().startswith((">>>", "+-", "|", "$ ")) or "::=" in s for s in lines):
        return None
    first = len(lines[0]) - len(lines[0].lstrip())
    if any(len(s) - len(s.lstrip()) > first + 4 for s in lines[1:]):
        return None
    text = " ".join(" ".join([_BULLET.sub("", lines[0], count=1), *lines[1:]]).split())
    chars = text.replace(" ", "")
    if not _ENDS_SENTENCE.search(text) or sum(c.isalpha() for c in chars) < 0.65 * len(chars):
        return None
    return text


def prose_paragraphs(text: str) -> list[str]:
    """The prose blocks of ``text`` (see the module doc), each joined into one line."""
    return _paragraphs(text)[0]


def _paragraphs(text: str) -> tuple[list[str], int, int, int]:
    """``(prose blocks, blocks, dropped blocks, words of the dropped blocks)`` of ``text``;
    fenced code and Markdown headings are removed first and not counted."""
    text = _MD_HEADING.sub("", _FENCE.sub("", text.replace("\r\n", "\n").replace("\r", "\n")))
    out, blocks, dropped, words = [], 0, 0, 0
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [s.rstrip() for s in block.split("\n") if s.strip()]
        if not lines:
            continue
        blocks += 1
        prose = _is_prose(lines)
        if prose:
            out.append(prose)
        else:
            dropped += 1
            words += sum(len(s.split()) for s in lines)
    return out, blocks, dropped, words


def split_sentences(paragraph: str, min_words: int = 3) -> list[str]:
    """Sentences of one prose paragraph; those under ``min_words`` words are dropped."""
    merged: list[str] = []
    for piece in _SENTENCE_BREAK.split(paragraph):
        if merged and merged[-1].endswith(_ABBREVIATIONS):
            merged[-1] += " " + piece
        else:
            merged.append(piece)
    return [s for s in merged if len(s.split()) >= min_words]


def _read_utf8(path: Path, where: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SearchKDError(f"{where}: cannot read ({e.strerror or type(e).__name__})") from None
    if b"\x00" in data:
        raise SearchKDError(f"{where}: a binary file (it holds NUL bytes), not UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SearchKDError(f"{where}: not UTF-8 text (bad byte at offset {e.start})") from None


def read_documents(spec: str) -> tuple[list[list[str]], str]:
    """The sentences of each document of a text ``--data`` spec, and the data set's name."""
    if spec == "embedded-text":
        from pydoc_data.topics import topics

        docs = [[s for p in prose_paragraphs(topics[k]) for s in split_sentences(p)] for k in sorted(topics)]
        return [d for d in docs if d], "embedded-text:pydoc-topics"
    kind, sep, arg = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if kind != "text" or not sep or not arg:
        raise SearchKDError(f"unknown text data {spec!r} (accepted: {TEXT_DATA_FORMS})")
    path = Path(os.path.expanduser(arg))
    where = f"text:{path}"
    if not path.exists():
        raise SearchKDError(f"text data not found: {path}")
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in _TEXT_SUFFIXES)
        texts = [t for t in (_read_utf8(f, f"{where}: {f.relative_to(path)}") for f in files) if t.strip()]
        if not texts:
            raise SearchKDError(f"{where}: no non-empty .txt or .md files in the folder")  # empty ones are skipped
    else:
        texts = [_read_utf8(path, where)]
        if not texts[0].strip():
            raise SearchKDError(f"{where}: the file is empty")
    parts = [_paragraphs(t) for t in texts]
    docs = [[s for p in paras for s in split_sentences(p)] for paras, *_ in parts]
    docs = [d for d in docs if d]
    if not docs:
        raise SearchKDError(f"{where}: no prose found (paragraphs separated by blank lines, each ending "
                            "with . ! ? or :, of at least three words)")
    blocks, dropped, words = (sum(p[i] for p in parts) for i in (1, 2, 3))
    if dropped:
        total = words + sum(len(s.split()) for paras, *_ in parts for s in paras)
        warnings.warn(f"{where}: dropped {dropped} of {blocks} text blocks ({words} of {total} words, "
                      f"{words / max(total, 1):.0%}) that do not read like prose (lists, titles, chat, code: no "
                      "sentence ending . ! ? or :, or under 65 % letters)", UserWarning, stacklevel=2)
    return docs, where


def _pack(docs: list[list[str]], counts: Iterator[int], budget: int) -> list[str]:
    rows: list[str] = []
    for doc in docs:
        cur: list[str] = []
        used = 0
        for sentence in doc:
            n = next(counts)
            if cur and used + n > budget:
                rows.append(" ".join(cur))
                cur, used = [], 0
            cur.append(sentence)
            used += n
        rows.append(" ".join(cur))
    return rows


def _unique_sentences(docs: list[list[str]]) -> list[list[str]]:
    """Each sentence once (its first occurrence): a sentence repeated in the text (Python's
    docs repeat boilerplate) would otherwise fall on both sides of a train/held-out split."""
    seen: set[str] = set()
    out = []
    for d in docs:
        kept = [s for s in d if not (s in seen or seen.add(s))]
        if kept:
            out.append(kept)
    return out


def load_text(spec: str, tokenizer: Any, max_length: int = 128, pack: bool = True) -> TextSet:
    """Read a text ``--data`` spec and tokenise it into fixed-length rows (see the module doc).

    Args:
        spec: ``embedded-text`` or ``text:PATH``.
        tokenizer: the teacher's Hugging Face tokenizer, or a
            :class:`~searchkd.teachers.text.TextTeacher` (its tokenizer is used).
        max_length: tokens per row, special tokens included.
        pack: share rows between consecutive sentences of a document; else one sentence a row.

    Repeated sentences are kept once, so no held-out row shares a sentence with a train row.
    """
    from searchkd.teachers.text import TextTeacher

    tokenizer = tokenizer.tokenizer if isinstance(tokenizer, TextTeacher) else tokenizer
    if max_length < 8:
        raise SearchKDError(f"max length must be at least 8 tokens, got {max_length}")
    docs, name = read_documents(spec)
    docs = _unique_sentences(docs)
    sentences = [s for d in docs for s in d]
    if pack:
        counts = tokenizer(sentences, add_special_tokens=False)["input_ids"]
        budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
        rows = _pack(docs, iter(len(c) for c in counts), budget)
    else:
        rows = sentences
    enc = tokenizer(rows, padding="max_length", truncation=True, max_length=max_length, return_tensors="np")
    return TextSet(np.asarray(enc["input_ids"], dtype=np.int64), np.asarray(enc["attention_mask"], dtype=np.int64),
                   tuple(rows), name)


def text_split(data: str, teacher: Any, seed: int) -> tuple[Any, Any]:
    """(train, held-out) :class:`~searchkd.data.text.TextSet` of a search, tokenised by the
    teacher's tokenizer; the split draws from the ``split`` seed stream."""
    from searchkd.seeds import stream_seed

    return load_text(data, teacher).split(HELD_OUT, seed=stream_seed(seed, "split"))
