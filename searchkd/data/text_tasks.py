"""Labelled text tasks for judging a BERT student downstream (``distill --task``).

* ``pydoc-topics`` (embedded, no download): which of 8 documentation topics of Python's own
  ``pydoc_data.topics`` (the Language Reference as ``help()`` shows it) a sentence comes from:
  ``types``, ``debugger``, ``string-methods``, ``compound``, ``specialnames``, ``typesseq``,
  ``typesmapping``, ``formatstrings`` (the 8 with the most sentences of their own). Sentences
  are cut as for ``embedded-text`` (:mod:`searchkd.data.text`); a sentence found in more than
  one topic is dropped (the topics quote each other), each kept once: 1,150 sentences, real
  text with real labels (majority class 23 %, chance 12.5 %).
* ``csv:PATH``: a UTF-8 CSV with columns ``text`` and ``label`` (any strings; classes are the
  sorted distinct labels).

:meth:`TextTask.split` is a seeded split stratified by class.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchkd.errors import SearchKDError

__all__ = ["TextTask", "load_task", "EMBEDDED_TASKS", "PYDOC_TOPICS"]

PYDOC_TOPICS = ("types", "debugger", "string-methods", "compound", "specialnames", "typesseq", "typesmapping",
                "formatstrings")
EMBEDDED_TASKS = {"pydoc-topics": "which of 8 Python documentation topics a sentence comes from (1,150 sentences)"}
TASK_FORMS = "pydoc-topics, csv:PATH (columns text,label)"


@dataclass(frozen=True)
class TextTask:
    """Texts, integer labels and the class names of a labelled text task."""

    texts: tuple[str, ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: Sequence[int], name: str | None = None) -> "TextTask":
        idx = np.asarray(idx, dtype=np.int64)
        return TextTask(tuple(self.texts[i] for i in idx), self.labels[idx], self.classes, name or self.name)

    def split(self, test: float = 0.3, seed: int = 0) -> tuple["TextTask", "TextTask"]:
        """A seeded (train, test) split stratified by class: ``round(test × n_c)`` of each class
        ``c`` (at least one where the class has two or more examples) goes to test."""
        rng = np.random.default_rng(seed)
        tr, te = [], []
        for c in range(len(self.classes)):
            idx = rng.permutation(np.flatnonzero(self.labels == c))
            k = min(len(idx) - 1, max(1, int(math.floor(len(idx) * test + 0.5)))) if len(idx) > 1 else 0
            te += idx[:k].tolist()
            tr += idx[k:].tolist()
        if not te or not tr:
            raise SearchKDError(f"{self.name} is too small to split into train and test")
        return self.subset(sorted(tr), self.name + "[train]"), self.subset(sorted(te), self.name + "[test]")

    def encode(self, tokenizer: Any, max_length: int) -> tuple[Any, Any]:
        """``(input_ids, attention_mask)`` int64 tensors, padded/truncated to ``max_length``."""
        enc = tokenizer(list(self.texts), padding="max_length", truncation=True, max_length=max_length,
                        return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]


def _pydoc_topics() -> TextTask:
    from pydoc_data.topics import topics

    from searchkd.data.text import prose_paragraphs, split_sentences

    per = {k: list(dict.fromkeys(s for p in prose_paragraphs(topics[k]) for s in split_sentences(p))) for k in topics}
    seen: dict[str, int] = {}
    for sentences in per.values():
        for s in sentences:
            seen[s] = seen.get(s, 0) + 1
    texts, labels = [], []
    for c, k in enumerate(PYDOC_TOPICS):
        for s in per[k]:
            if seen[s] == 1:
                texts.append(s)
                labels.append(c)
    return TextTask(tuple(texts), np.asarray(labels, dtype=np.int64), PYDOC_TOPICS, "pydoc-topics")


def _csv(path: Path) -> TextTask:
    where = f"csv:{path}"
    if not path.is_file():
        raise SearchKDError(f"{where}: file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError as e:
        raise SearchKDError(f"{where}: not UTF-8 text (bad byte at offset {e.start})") from None
    except (OSError, csv.Error) as e:
        raise SearchKDError(f"{where}: cannot read ({e})") from None
    if not rows or not {"text", "label"} <= set(rows[0]):
        raise SearchKDError(f"{where}: needs a header with columns text and label, and at least one row")
    bad = next((i for i, r in enumerate(rows) if not (r.get("text") or "").strip() or (r.get("label") or "").strip() == ""),
               None)
    if bad is not None:
        raise SearchKDError(f"{where}: row {bad + 2} has an empty text or label")
    classes = tuple(sorted({r["label"].strip() for r in rows}))
    if len(classes) < 2:
        raise SearchKDError(f"{where}: needs at least two distinct labels, found {len(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    return TextTask(tuple(r["text"].strip() for r in rows), np.asarray([index[r["label"].strip()] for r in rows]),
                    classes, where)


def load_task(spec: str) -> TextTask:
    """A task by name (``pydoc-topics``) or ``csv:PATH``; :class:`SearchKDError` otherwise."""
    if spec == "pydoc-topics":
        return _pydoc_topics()
    kind, sep, arg = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if kind == "csv" and sep and arg:
        return _csv(Path(os.path.expanduser(arg)))
    raise SearchKDError(f"unknown task {spec!r} (accepted: {TASK_FORMS})")
