"""SuperLM fidelity: does the held-out relation loss of a subnet inside the SuperLM rank the
subnets as their standalone distillation does?

Trains a SuperLM of ``--space`` for ``--steps`` steps on the train split of ``--data`` from
``--teacher`` (AutoDistil's sandwich rule), picks ``--archs`` subnets at evenly spaced
quantiles of parameters among the space's archs, scores each inside the SuperLM on the
held-out split, then distils each from scratch on its own for the same number of steps by the
same loop (:meth:`SuperLM.standalone`) and measures its held-out loss. Reports Kendall τ and
Spearman ρ (with permutation p-values) between the two losses, for each ``--loss`` (both by
default, to choose the default loss; the target is τ ≥ 0.6), and τ of the parameter count,
the ranking a size-only guess gives.

    PYTHONPATH=. python benchmarks/bert_fidelity.py --steps 300 --batch-size 32            # the full run
    PYTHONPATH=. python benchmarks/bert_fidelity.py --steps 2 --batch-size 4 --archs 3 --loss minilmv2 \\
        --out benchmarks/out/bert_fidelity_tiny.json                                         # a smoke run

Checkpoints go to ``--work`` (default runs/bert_fidelity/<settings>), so a killed run resumes.
On two cores, a second process with ``--standalone-only`` (same settings) distils the
standalones largest first while the first trains the SuperLM; the first then finds them done.
Writes ``--out`` (default ``runs/bert_fidelity.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, rank_stats, write_json  # noqa: E402


def quantile_archs(space, n: int) -> list[str]:
    """``n`` archs at evenly spaced quantiles of parameters (ties: the grid's order)."""
    archs = sorted((space.decode(v) for v in np.ndindex(*space.bounds())), key=lambda a: space.cost(a)["params"])
    idx = np.unique(np.round(np.linspace(0, len(archs) - 1, n)).astype(int))
    return [archs[i] for i in idx]


def _config(steps: int, batch_size: int, lr: float, loss: str, teacher, seed: int):
    from searchkd.supernets import SuperLMConfig

    return SuperLMConfig(steps=steps, batch_size=batch_size, lr=lr, loss=loss, relation_heads=teacher.info.heads,
                         seed=seed, checkpoint_every=max(1, min(100, steps // 4)))


def standalones(space, teacher, train, archs: list[str], *, config, device, work: Path) -> list[tuple]:
    """Distil each arch standalone from random init (resumable, in ``work/scratch/<arch>``):
    ``(model, stats, seconds)`` per arch."""
    from searchkd.evaluate.text import _qkv
    from searchkd.supernets import SuperLM

    qkv, train_t, out = _qkv(teacher), train.tensors(range(len(train))), []
    for arch in archs:
        st = SuperLM.standalone(space, arch, qkv, teacher=teacher.info.id, config=config, device=device)
        t0 = time.perf_counter()
        stats = st.train(*train_t, out_dir=work / "scratch" / arch)
        out.append((st, stats, time.perf_counter() - t0))
        print(f"{config.loss} {arch}: standalone done ({out[-1][2]:.1f} s)", flush=True)
    return out


def fidelity(space, teacher, train, held, archs: list[str], *, loss: str, steps: int, batch_size: int, lr: float,
             seed: int, device, work: Path) -> dict:
    from searchkd.evaluate.text import _qkv
    from searchkd.supernets import SuperLM

    qkv = _qkv(teacher)
    cfg = _config(steps, batch_size, lr, loss, teacher, seed)
    train_t, held_t = train.tensors(range(len(train))), held.tensors(range(len(held)))
    lm = SuperLM(space, qkv, teacher=teacher.info.id, config=cfg, device=device)
    t0 = time.perf_counter()
    sup = lm.train(*train_t, out_dir=work / loss / "supernet")
    sup_s = time.perf_counter() - t0
    in_lm = lm.score_many(archs, *held_t)
    rows = []
    for arch, inside in zip(archs, in_lm):
        (st, stats, seconds), = standalones(space, teacher, train, [arch], config=cfg, device=device, work=work / loss)
        rows.append({"arch": arch, "params": space.cost(arch)["params"], "superlm_loss": inside,
                     "standalone_loss": st.score(arch, *held_t), "standalone_seconds": seconds,
                     "standalone_steps_run": len(stats["history"]),
                     "standalone_s_per_step": seconds / max(1, len(stats["history"]))})
        print(f"{loss} {arch}: superlm {inside:.4f} standalone {rows[-1]['standalone_loss']:.4f} ({seconds:.1f} s)")
    truth = [-r["standalone_loss"] for r in rows]  # higher is better on both sides
    s = rank_stats([-r["superlm_loss"] for r in rows], truth, p_values=True, seed=seed)
    p = rank_stats([r["params"] for r in rows], truth)
    return {"loss": loss, "config": asdict(cfg), "kendall": s["kendall"], "kendall_p": s["kendall_p"],
            "spearman": s["spearman"], "spearman_p": s["spearman_p"], "params_kendall": p["kendall"],
            "params_spearman": p["spearman"],
            "supernet": {"steps": sup["step"], "steps_run": len(sup["history"]), "seconds": sup_s,
                         "s_per_step": sup_s / max(1, len(sup["history"])), "tokens_per_s": sup["tokens_per_s"]},
            "archs": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default="bert-tiny")
    ap.add_argument("--teacher", default="minilm-l6")
    ap.add_argument("--data", default="embedded-text")
    ap.add_argument("--steps", type=int, default=300, help="SuperLM steps, and each standalone's (default 300)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-5, help="AdamW peak lr, linear decay to 0 (default 4e-5, AutoDistil's)")
    ap.add_argument("--loss", default="both", choices=("minilmv2", "autodistil", "both"))
    ap.add_argument("--archs", type=int, default=8, help="subnets at evenly spaced params quantiles (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", help="checkpoints (default runs/bert_fidelity/<space>-s<steps>-b<batch>-lr<lr>-seed<seed>)")
    ap.add_argument("--out", default=str(RUNS / "bert_fidelity.json"))
    ap.add_argument("--standalone-only", action="store_true",
                    help="only distil the standalones (largest first) into --work, for a second process; writes no JSON")
    args = ap.parse_args(argv)

    from searchkd.devices import resolve_device
    from searchkd.evaluate.text import _teacher, text_split
    from searchkd.spaces import get_space

    t0 = time.perf_counter()
    device = resolve_device(args.device)
    teacher = _teacher(args.teacher, None, device)
    train, held = text_split(args.data, teacher, args.seed)
    space = get_space(args.space)
    archs = quantile_archs(space, args.archs)
    key = f"{args.space}-s{args.steps}-b{args.batch_size}-lr{args.lr:g}-seed{args.seed}"
    work = Path(args.work or ROOT / "runs" / "bert_fidelity" / key)
    losses = ("minilmv2", "autodistil") if args.loss == "both" else (args.loss,)
    if args.standalone_only:
        for loss in losses:
            standalones(space, teacher, train, archs[::-1], config=_config(args.steps, args.batch_size, args.lr, loss,
                                                                             teacher, args.seed),
                        device=device, work=work / loss)
        return 0
    results = {loss: fidelity(space, teacher, train, held, archs, loss=loss, steps=args.steps,
                              batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=device, work=work) for loss in losses}
    tau = {k: v["kendall"] for k, v in results.items()}
    out = {"command": "python benchmarks/bert_fidelity.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "space": args.space, "teacher": teacher.info.name, "teacher_id": teacher.info.id, "data": args.data,
           "n_train": len(train), "n_held_out": len(held), "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
           "seed": args.seed, "device": device, "archs": archs, "target_kendall": 0.6, "kendall": tau,
           "best_loss": max(tau, key=lambda k: -np.inf if tau[k] is None or not np.isfinite(tau[k]) else tau[k]),
           "results": results, "seconds": time.perf_counter() - t0, "machine": machine()}
    write_json(Path(args.out), out)
    print("kendall tau, superlm vs standalone: " + ", ".join(f"{k} {v:.3f}" for k, v in tau.items() if v is not None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
