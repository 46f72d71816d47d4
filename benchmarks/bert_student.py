"""The exported student against its teacher, and what the weight sharing costs in training.

1. The student a BERT search exported (``DIR/student``, loaded with
   :func:`searchkd.hf.load.load_exported`; without one, the best arch extracted from the
   SuperLM) against the teacher, on the search's held-out split: parameters (and their
   ratio), the relation loss of its last layer's Q/K/V (beside the SuperLM's score of the same
   arch, which the export must reproduce), the affine-mapped embedding cosine and the
   nearest-neighbour agreement (:class:`searchkd.distill.text.TeacherAgreement`).
2. Training throughput: SuperLM sandwich steps (4 subnets a step) against a plain student of
   the space's largest shape (:meth:`SuperLM.standalone`, one subnet a step), both fresh, with
   the search's recipe, ``--speed-steps`` steps each after one warm-up step, in one run:
   tokens/s (non-padding tokens through the teacher) and their ratio.

    PYTHONPATH=. python benchmarks/bert_student.py --result runs/tiny --speed-steps 20
    PYTHONPATH=. python benchmarks/bert_student.py --result /tmp/x --speed-steps 2 \\
        --out benchmarks/out/bert_student_tiny.json                                          # a smoke run

Writes ``--out`` (default ``runs/bert_student.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, write_json  # noqa: E402
from benchmarks.bert_inherit import open_search  # noqa: E402


def held_out_loss(model, teacher, held, *, heads: int, kind: str, batch_size: int) -> float:
    """The relation loss of a transformers encoder's last-layer Q/K/V, averaged over ``held``'s
    rows as :meth:`SuperLM.score_many` averages it."""
    import torch

    from searchkd.supernets.superlm import relation_loss
    from searchkd.teachers.text import text_features

    ids, mask = held
    total = 0.0
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            b_ids, b_mask = ids[i:i + batch_size].to(device), mask[i:i + batch_size].to(device)
            t, s = teacher.features(b_ids, b_mask), text_features(model, b_ids, b_mask)
            total += float(relation_loss((t.q, t.k, t.v), (s.q, s.k, s.v), b_mask, heads=heads, kind=kind)) * len(b_ids)
    return total / len(ids)


def throughput(lm_like, train_t, steps: int) -> dict:
    lm_like.train(*train_t, until=1, progress=False)  # warm-up: allocation, kernels
    stats = lm_like.train(*train_t, until=1 + steps, progress=False)
    return {"steps": len(stats["history"]), "seconds": stats["seconds"], "tokens_per_s": stats["tokens_per_s"],
            "s_per_step": stats["seconds"] / max(1, len(stats["history"]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--result", required=True, help="a BERT search's result.json or folder (with supernet/, student/)")
    ap.add_argument("--speed-steps", type=int, default=20, help="timed training steps of each (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(RUNS / "bert_student.json"))
    args = ap.parse_args(argv)

    from searchkd.distill.text import TeacherAgreement, fit_rows
    from searchkd.devices import resolve_device
    from searchkd.evaluate.text import _qkv
    from searchkd.hf.load import load_exported
    from searchkd.supernets import SuperLM

    t0 = time.perf_counter()
    device = resolve_device(args.device)
    res, lm, teacher, train, held = open_search(args.result, device)
    path = Path(args.result)
    export_dir = (path if path.is_dir() else path.parent) / "student"
    arch = res["best"]["arch"]
    if export_dir.is_dir():
        student, source = load_exported(export_dir).to(device), str(export_dir)
    else:
        student, source = lm.extract(arch).eval(), "extracted from the SuperLM (no export found)"
    c = lm.config
    train_t, held_t = train.tensors(range(len(train))), held.tensors(range(len(held)))
    agreement = TeacherAgreement(teacher, fit_rows(train, args.seed), held_t, batch_size=c.batch_size, device=device)
    params = sum(p.numel() for p in student.parameters())
    row = {"arch": arch, "source": source, "params": params / 1e6, "teacher_params": teacher.info.params / 1e6,
           "params_ratio": params / teacher.info.params,
           "held_out_loss": (held_out_loss(student, teacher, held_t, heads=c.relation_heads, kind=c.loss,
                                           batch_size=c.batch_size) if export_dir.is_dir() else lm.score(arch, *held_t)),
           "superlm_loss": lm.score(arch, *held_t), **agreement(student),
           "cosine_floor": agreement.floor()}
    print(f"student {arch}: {row['params']:.2f} M params ({100 * row['params_ratio']:.1f} % of the teacher), held-out "
          f"loss {row['held_out_loss']:.4f} (in the SuperLM {row['superlm_loss']:.4f}), cosine "
          f"{row['embedding_cosine']:.3f}, nn agreement {row['nn_agreement']:.3f}; last layer's input: cosine "
          f"{row['input_cosine']:.3f}, nn agreement {row['input_nn_agreement']:.3f}; a constant embedding's cosine "
          f"{row['cosine_floor']:.3f}")

    cfg = replace(c, steps=1 + args.speed_steps, seed=args.seed, checkpoint_every=0)
    qkv = _qkv(teacher)
    speed = {"superlm": throughput(SuperLM(lm.space, qkv, teacher=teacher.info.id, config=cfg, device=device),
                                   train_t, args.speed_steps),
             "plain_largest": throughput(SuperLM.standalone(lm.space, lm.space.largest(), qkv, teacher=teacher.info.id,
                                                            config=cfg, device=device), train_t, args.speed_steps)}
    speed["largest"] = str(lm.space.largest())
    speed["superlm_over_plain_tokens_per_s"] = speed["superlm"]["tokens_per_s"] / speed["plain_largest"]["tokens_per_s"]
    print(f"tokens/s: SuperLM {speed['superlm']['tokens_per_s']:.0f}, plain {speed['largest']} "
          f"{speed['plain_largest']['tokens_per_s']:.0f} (ratio {speed['superlm_over_plain_tokens_per_s']:.3f})")
    out = {"command": "python benchmarks/bert_student.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "result": str(args.result), "space": lm.space.name, "teacher": teacher.info.name,
           "supernet_step": lm.step, "config": asdict(c), "n_train": len(train), "n_held_out": len(held),
           "device": device, "student": row, "throughput": speed, "seconds": time.perf_counter() - t0,
           "machine": machine()}
    write_json(Path(args.out), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
