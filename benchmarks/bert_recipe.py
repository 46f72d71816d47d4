"""The CPU default learning rate of the SuperLM (issue 20 item 4), chosen by a short
measurement: a bert-tiny SuperLM cut from MiniLM-L6 trained ``--steps`` sandwich steps at each
of ``--lrs`` (same data, batch, seed), then the held-out relation loss of 8 subnets at evenly
spaced parameter quantiles. The text is the prose of the pydoc topics outside the downstream
task's 8 (:func:`other_topics_text`), as in ``bert_downstream.py``.

    PYTHONPATH=. python benchmarks/bert_recipe.py --steps 30 --batch-size 16 --out benchmarks/out/bert_recipe.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def other_topics_text(path: Path) -> str:
    """Write the prose of every pydoc topic but the ``pydoc-topics`` task's to ``path`` (one
    paragraph a block) and return ``text:PATH``: text the SuperLM may train on without ever
    seeing a sentence of the downstream task."""
    from pydoc_data.topics import topics

    from searchkd.data.text import prose_paragraphs
    from searchkd.data.text_tasks import PYDOC_TOPICS

    path.parent.mkdir(parents=True, exist_ok=True)
    paras = [p for k in sorted(topics) if k not in PYDOC_TOPICS for p in prose_paragraphs(topics[k])]
    path.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return f"text:{path}"


def quantile_archs(space, n: int = 8) -> list[str]:
    archs = sorted((space.decode(v) for v in np.ndindex(*space.bounds())), key=lambda a: space.cost(a)["params"])
    return [archs[int(round(q * (len(archs) - 1)))] for q in np.linspace(0, 1, n)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lrs", default="4e-5,2e-4,1e-3")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--work", default="runs/bert_recipe")
    p.add_argument("--out", default="runs/bert_recipe.json")
    args = p.parse_args(argv)

    import torch

    from searchkd.evaluate.text import _qkv, _teacher, text_split
    from searchkd.io import write_json
    from searchkd.spaces import get_space
    from searchkd.supernets import SuperLM, SuperLMConfig
    from searchkd.supernets.superlm_init import resolve_init

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = other_topics_text(Path(args.work) / "other_topics.txt")
    space = get_space("bert-tiny")
    teacher = _teacher("minilm-l6", None, "cpu")
    train, held = text_split(data, teacher, 0)
    label, pretrained, _ = resolve_init(None, teacher, space)
    picks = quantile_archs(space)
    held_t = held.tensors(range(len(held)))
    rows = {}
    for lr in (float(x) for x in args.lrs.split(",")):
        cfg = SuperLMConfig(steps=args.steps, batch_size=args.batch_size, lr=lr, relation_heads=12, init=label,
                            checkpoint_every=0)
        lm = SuperLM(space, _qkv(teacher), teacher=teacher.info.id, config=cfg, device="cpu", pretrained=pretrained)
        before = lm.score_many(picks, *held_t, batch_size=16)
        t1 = time.perf_counter()
        stats = lm.train(*train.tensors(range(len(train))), progress=False)
        after = lm.score_many(picks, *held_t, batch_size=16)
        rows[str(lr)] = {"before": dict(zip(picks, before)), "after": dict(zip(picks, after)),
                         "mean_before": float(np.mean(before)), "mean_after": float(np.mean(after)),
                         "train_seconds": time.perf_counter() - t1, "history": stats["history"]}
        print(f"lr {lr:g}: mean held-out loss {np.mean(before):.4f} -> {np.mean(after):.4f} "
              f"({time.perf_counter() - t1:.0f} s)", flush=True)
    write_json(args.out, {"command": "python benchmarks/bert_recipe.py " + " ".join(argv or sys.argv[1:]),
                          "space": "bert-tiny", "teacher": teacher.info.name, "data": "pydoc topics outside the task",
                          "init": label, "n_train": len(train), "n_held_out": len(held), "steps": args.steps,
                          "batch_size": args.batch_size, "subnets": picks, "lrs": rows,
                          "seconds": time.perf_counter() - t0})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
