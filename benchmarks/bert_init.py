"""How to cut a bert-tiny SuperLM from MiniLM-L6 (issue 20 item 1): the space's heads are
``hidden // 12`` wide (10-18 dims), MiniLM's 32, so no cut is exact. Measured before any
training: the held-out relation loss (MiniLMv2 KL, the SuperLM's own score) of 8 subnets at
evenly spaced parameter quantiles, for

* ``aligned``: subnet head i = the first head_dim dims of pretrained head i (the default);
* ``leading``: the first heads × head_dim rows of the pretrained Q/K/V, re-split;
* ``aligned+reorder``: heads, FFN neurons and head dims sorted by weight-magnitude importance
  first (DynaBERT's reordering, with a magnitude proxy for its gradient importance);
* ``random``: BERT's random initialisation (the SuperLM's start before issue 20).

    PYTHONPATH=. python benchmarks/bert_init.py --out benchmarks/out/bert_init.json
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="bert-tiny")
    p.add_argument("--teacher", default="minilm-l6")
    p.add_argument("--data", default="embedded-text")
    p.add_argument("--subnets", type=int, default=8)
    p.add_argument("--out", default="runs/bert_init.json")
    args = p.parse_args(argv)

    import torch

    from searchkd.evaluate.text import _qkv, _teacher, text_split
    from searchkd.io import write_json
    from searchkd.spaces import get_space
    from searchkd.supernets import SuperLM, SuperLMConfig
    from searchkd.supernets.superlm_init import pretrained_shape

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    space = get_space(args.space)
    teacher = _teacher(args.teacher, None, "cpu")
    _, held = text_split(args.data, teacher, 0)
    ids, mask = held.tensors(range(len(held)))
    archs = sorted((space.decode(v) for v in np.ndindex(*space.bounds())), key=lambda a: space.cost(a)["params"])
    picks = [archs[int(round(q * (len(archs) - 1)))] for q in np.linspace(0, 1, args.subnets)]
    base = teacher.model
    pretrained = ({k: v.detach() for k, v in base.state_dict().items()}, pretrained_shape(base.config))
    variants = {"aligned": dict(head_slicing="aligned", reorder=False), "leading": dict(head_slicing="leading", reorder=False),
                "aligned+reorder": dict(head_slicing="aligned", reorder=True), "random": None}
    rows = {}
    for name, kw in variants.items():
        cfg = SuperLMConfig(relation_heads=teacher.info.heads, **(kw or {}), init="random" if kw is None else "teacher")
        lm = SuperLM(space, _qkv(teacher), teacher=teacher.info.id, config=cfg, device="cpu",
                     pretrained=None if kw is None else pretrained)
        losses = lm.score_many(picks, ids, mask, batch_size=16)
        rows[name] = {"losses": dict(zip(picks, losses)), "mean_loss": float(np.mean(losses))}
        print(name, f"mean held-out relation loss {np.mean(losses):.4f}", [round(x, 3) for x in losses], flush=True)
    write_json(args.out, {"command": "python benchmarks/bert_init.py " + " ".join(argv or sys.argv[1:]),
                          "space": space.name, "teacher": teacher.info.name, "data": args.data,
                          "n_held_out": len(held), "subnets": picks,
                          "params": {a: space.cost(a)["params"] for a in picks}, "variants": rows,
                          "seconds": time.perf_counter() - t0})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
