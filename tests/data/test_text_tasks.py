from __future__ import annotations

import numpy as np
import pytest

from searchkd.data.text_tasks import PYDOC_TOPICS, load_task
from searchkd.errors import SearchKDError


def test_pydoc_topics_is_real_text_with_one_topic_per_sentence():
    task = load_task("pydoc-topics")
    assert task.classes == PYDOC_TOPICS and len(task) == 1150 and len(set(task.texts)) == len(task)
    counts = np.bincount(task.labels)
    assert counts.tolist() == [267, 182, 157, 138, 107, 105, 99, 95]
    # an independent look-up: each sentence lies in its own topic's text and in no other chosen topic
    from pydoc_data.topics import topics

    for text, label in list(zip(task.texts, task.labels))[::37]:
        flat = {k: " ".join(topics[k].split()) for k in PYDOC_TOPICS}
        owners = [k for k in PYDOC_TOPICS if " ".join(text.split()).lstrip("*- ") in flat[k]]
        assert PYDOC_TOPICS[label] in owners
    train, test = task.split(0.3, seed=4)
    assert len(train) + len(test) == 1150 and not set(train.texts) & set(test.texts)
    assert np.bincount(test.labels).tolist() == [int(c * 0.3 + 0.5) for c in counts]  # stratified
    assert test.texts == task.split(0.3, seed=4)[1].texts != task.split(0.3, seed=5)[1].texts


def test_csv_tasks_and_their_errors(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text('text,label\n"Hello, world.",pos\nBad day.,neg\nFine.,pos\nNo.,neg\n', encoding="utf-8")
    task = load_task(f"csv:{f}")
    assert task.classes == ("neg", "pos") and task.labels.tolist() == [1, 0, 1, 0] and task.texts[0] == "Hello, world."
    for content, match in (("words,label\na,b\n", "columns text and label"), ("text,label\na,x\nb,x\n", "two distinct"),
                           ("text,label\n,x\nb,y\n", "row 2 has an empty")):
        f.write_text(content)
        with pytest.raises(SearchKDError, match=match):
            load_task(f"csv:{f}")
    with pytest.raises(SearchKDError, match="file not found"):
        load_task(f"csv:{tmp_path / 'none.csv'}")
    with pytest.raises(SearchKDError, match="unknown task 'glue'"):
        load_task("glue")
