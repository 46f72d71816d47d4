"""Inherited weights vs random init: the search's best student, extracted from its SuperLM
(the weights the export holds), distilled N more steps, against the same arch distilled N
steps from BERT's random initialisation.

Both continue the task-agnostic relation distillation of the search (its teacher, train split
and SuperLM recipe: batch, lr, loss, relation heads, with a fresh optimizer whose linear decay
ends at the largest N) through :meth:`SuperLM.standalone`; each is one run, measured at every
N of ``--steps`` on the search's held-out split: relation loss, and the teacher agreement of
its sentence embeddings (:class:`searchkd.distill.text.TeacherAgreement`: the affine-mapped
cosine and the nearest-neighbour agreement), of the last hidden state (what the export gives)
and of the last layer's input (the deepest state the relation loss trains: the last layer's
attention output and feed-forward block keep their random init).

    searchkd search --space bert-tiny --strategy autodistil --budget 256 --out runs/tiny    # first, a search
    PYTHONPATH=. python benchmarks/bert_inherit.py --result runs/tiny --steps 0,50,100,200
    PYTHONPATH=. python benchmarks/bert_inherit.py --result runs/tiny --steps 0,100,200 --lr 5e-4 \
        --out benchmarks/out/bert_inherit_lr5e-4.json                                      # both at a higher lr
    PYTHONPATH=. python benchmarks/bert_inherit.py --result /tmp/x --steps 0,1,2 \\
        --out benchmarks/out/bert_inherit_tiny.json                                          # a smoke run

Writes ``--out`` (default ``runs/bert_inherit.json``).
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


def open_search(result: str, device: str):
    """(config, SuperLM, teacher, train, held) of a finished BERT search."""
    from searchkd.distill.select import read_result
    from searchkd.distill.text import supernet_dir
    from searchkd.evaluate.text import _qkv, _teacher, text_split
    from searchkd.supernets import SuperLM

    path = Path(result)
    res, _ = read_result(path)
    config = res["config"]
    teacher = _teacher(config.get("teacher"), config.get("teacher_weights"), device)
    lm = SuperLM.load(supernet_dir(config, (path if path.is_dir() else path.parent).resolve()), _qkv(teacher),
                      teacher=teacher.info.id, device=device)
    train, held = text_split(config.get("data") or "embedded-text", teacher, int(config.get("seed", 0)))
    return res, lm, teacher, train, held


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--result", required=True, help="a BERT search's result.json or folder (with its supernet)")
    ap.add_argument("--arch", help="default: the search's best")
    ap.add_argument("--steps", default="0,50,100,200", help="measure after these many steps (default 0,50,100,200)")
    ap.add_argument("--lr", type=float, default=None, help="default: the search's SuperLM lr")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(RUNS / "bert_inherit.json"))
    args = ap.parse_args(argv)

    from searchkd.distill.text import TeacherAgreement, fit_rows
    from searchkd.devices import resolve_device
    from searchkd.evaluate.text import _qkv
    from searchkd.supernets import SuperLM

    t0 = time.perf_counter()
    points = sorted({int(s) for s in args.steps.split(",")})
    device = resolve_device(args.device)
    res, lm, teacher, train, held = open_search(args.result, device)
    arch = args.arch or res["best"]["arch"]
    cfg = replace(lm.config, steps=max(1, points[-1]), seed=args.seed, checkpoint_every=0,
                  lr=lm.config.lr if args.lr is None else args.lr)
    train_t, held_t = train.tensors(range(len(train))), held.tensors(range(len(held)))
    agreement = TeacherAgreement(teacher, fit_rows(train, args.seed), held_t, batch_size=cfg.batch_size, device=device)
    curves = {}
    for init in ("inherited", "scratch"):
        st = SuperLM.standalone(lm.space, arch, _qkv(teacher), teacher=teacher.info.id, config=cfg,
                                init=lm.extract(arch) if init == "inherited" else None, device=device)
        rows, seconds = [], 0.0
        for n in points:
            stats = st.train(*train_t, until=n, progress=False) if n > st.step else {"history": [], "seconds": 0.0}
            seconds += stats["seconds"]
            rows.append({"steps": st.step, "held_out_loss": st.score(arch, *held_t), **agreement(st.net),
                         "train_seconds": seconds, "s_per_step": seconds / max(1, st.step)})
            print(f"{init:<9} {arch} step {st.step:>5}: loss {rows[-1]['held_out_loss']:.4f} "
                  f"cosine {rows[-1]['embedding_cosine']:.3f} nn {rows[-1]['nn_agreement']:.3f} | last layer's input: "
                  f"cosine {rows[-1]['input_cosine']:.3f} nn {rows[-1]['input_nn_agreement']:.3f}")
        curves[init] = rows
    out = {"command": "python benchmarks/bert_inherit.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "result": str(args.result), "arch": arch, "space": lm.space.name, "teacher": teacher.info.name,
           "supernet_step": lm.step, "config": asdict(cfg), "n_train": len(train), "n_held_out": len(held),
           "device": device, "curves": curves,
           **{f"inherited_minus_scratch_{key}": [a[key] - b[key] for a, b in zip(curves["inherited"], curves["scratch"])]
              for key in ("held_out_loss", "embedding_cosine", "input_cosine")},
           "seconds": time.perf_counter() - t0, "machine": machine()}
    write_json(Path(args.out), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
