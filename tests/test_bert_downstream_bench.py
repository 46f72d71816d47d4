"""benchmarks/bert_downstream.py trains its SuperLM on text that holds no sentence of the task."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bert_recipe import other_topics_text  # noqa: E402

from searchkd.data.text import read_documents  # noqa: E402
from searchkd.data.text_tasks import load_task  # noqa: E402


def test_the_superlm_text_holds_no_task_sentence(tmp_path):
    spec = other_topics_text(tmp_path / "other.txt")
    docs, _ = read_documents(spec)
    corpus = "\n".join(s for d in docs for s in d)
    task = load_task("pydoc-topics")
    assert len(corpus) > 100_000
    assert not [t for t in task.texts if t in corpus]
