"""ACM vs static width at equal compute (issue 13's benchmark): for every budget of a finished
``searchkd acm`` run, the same dense model with every FFN statically cut to the FFN compute
fraction the ACM measured (keeping the units of largest ‖w_in‖·‖w_out‖, the ACM learners'
ranking), then distilled end to end for ``--steps`` steps with the ACM's stage-3 recipe (MSE of
the final hidden states against the dense model, Adam lr 1e-4, the same batch size and seeded
batches), both measured on the same held-out rows: distillation loss and sentence-embedding
cosine (as ``acm.json``), plus the wall-time ratio to the dense model.

    searchkd acm --model minilm-l6 --out runs/acm-minilm                    # first, the ACM run
    PYTHONPATH=. python benchmarks/acm.py --run runs/acm-minilm --steps 100
    PYTHONPATH=. python benchmarks/acm.py --run runs/acm-minilm --wall-only --out benchmarks/out/acm_wall.json

    PYTHONPATH=. python benchmarks/acm.py --runs runs/acm-s0,runs/acm-s1,runs/acm-s2 --out F.json  # --task runs

``--runs`` (runs of ``searchkd acm --task``, one per seed; issue 25's benchmark 1): per budget,
the ACM's task accuracy against the static cut of equal FLOPs trained on the same task loss for
the same total steps as the ACM (stage 1 + 2 + 3, stage 3's batch size and batches), from the
same task-tuned dense model and classifier (recomputed: seeded), plus both models'
sentence-embedding cosine with that dense model on the held-out text, and per layer the
largest share of real tokens at one k.

Writes ``--out`` (default ``runs/acm.json``) and prints the table. ``--wall-only``
measures wall time alone (run it on an idle machine): the dense encoder, each budget's
converted model as saved, the same model with every gate forced to k = N (all learners on every
token: what the learner split and the grouping cost at full compute) and the static cut, at
batch ``eval_batch_size`` × 128 tokens over the held-out rows, interleaved, best of ``--reps``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, write_json  # noqa: E402


def distil_static(static, dense, ids, mask, *, steps: int, batch_size: int, seed: int, lr: float = 1e-4) -> list[float]:
    """End-to-end hidden-state distillation of ``static`` (in place), seeded batches."""
    import torch

    from searchkd.supernets.acm.train import batch_rows, hidden_loss

    opt = torch.optim.Adam(static.parameters(), lr=lr)
    static.train()
    losses = []
    for step in range(steps):
        idx = batch_rows(step, len(ids), batch_size, seed, "stage3")  # stage 3's batches
        b_ids, b_mask = ids[idx], mask[idx]
        with torch.no_grad():
            target = dense(input_ids=b_ids, attention_mask=b_mask).last_hidden_state
        loss = hidden_loss(static(input_ids=b_ids, attention_mask=b_mask).last_hidden_state, target, b_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(static.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    static.eval()
    return losses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a finished `searchkd acm` output directory")
    p.add_argument("--runs", help="comma-separated finished `searchkd acm --task` runs, one per seed (see above)")
    p.add_argument("--merge", help="comma-separated JSON files written by --runs, combined into --out")
    p.add_argument("--steps", type=int, default=None, help="static distillation steps (default: the run's stage-3 "
                   "steps); with --runs, the static cut's task steps (default: the ACM's three stages together)")
    p.add_argument("--out", default=str(RUNS / "acm.json"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--wall-only", action="store_true", help="only the wall-time comparison (see above)")
    p.add_argument("--reps", type=int, default=5, help="--wall-only: repetitions, the best kept (default 5)")
    args = p.parse_args(argv)

    import torch

    from searchkd.supernets.acm.run import _evaluate, _wall, truncate_converted
    from searchkd.evaluate.text import _teacher, text_split
    from searchkd.io import read_json

    torch.set_num_threads(args.threads)
    if args.merge:
        return merge(args)
    if args.runs:
        return task_mode(args)
    if not args.run:
        p.error("--run or --runs is required")
    run = read_json(Path(args.run) / "acm.json")
    c = run["config"]
    steps = run["acm"]["stage3_steps"] if args.steps is None else args.steps
    teacher = _teacher(c["model"], None, "cpu")
    dense = teacher.model.eval()
    train, held = text_split(c["data"], teacher, c["seed"])
    ids, mask = train.tensors(range(len(train)))
    batches = [held.tensors(range(i, min(i + c["eval_batch_size"], len(held))))
               for i in range(0, len(held), c["eval_batch_size"])]
    with torch.no_grad():
        ref = [dense(input_ids=i, attention_mask=m).last_hidden_state for i, m in batches]
    if args.wall_only:
        return wall_only(args, run, dense, batches, held)
    dense_wall = _wall(dense, batches, acm=False)
    rows = []
    for r in run["rows"]:
        frac = min(1.0, r["fraction"])
        static = truncate_converted(dense, frac, c.get("convert", "ffn"))
        before = _evaluate(static, ref, batches, acm=False)
        losses = distil_static(static, dense, ids, mask, steps=steps, batch_size=run["acm"]["batch_size"],
                               seed=c["seed"])
        after = _evaluate(static, ref, batches, acm=False)
        rows.append({"budget": r["budget"], "ffn_fraction": frac,
                     "acm": {k: r[k] for k in ("distill_loss", "hidden_cosine", "embedding_cosine", "wall_time_ratio",
                                               "mean_k")},
                     "static_cut": before,
                     "static_distilled": {**after, "steps": steps, "final_train_loss": losses[-1] if losses else None,
                                          "wall_time_ratio": _wall(static, batches, acm=False) / dense_wall}})
        a, s = rows[-1]["acm"], rows[-1]["static_distilled"]
        print(f"b={r['budget']:g} frac {frac:.3f}  ACM loss {a['distill_loss']:.4g} cos {a['embedding_cosine']:.4f} "
              f"wall {a['wall_time_ratio']:.2f} | static cut loss {before['distill_loss']:.4g} cos "
              f"{before['embedding_cosine']:.4f} | static +{steps} steps loss {s['distill_loss']:.4g} cos "
              f"{s['embedding_cosine']:.4f} wall {s['wall_time_ratio']:.2f}", flush=True)
    write_json(Path(args.out), {"run": str(args.run), "model": c["model"], "learners": c["learners"],
                                "acm_steps": {k: run["acm"][k] for k in ("stage1_steps", "stage2_steps", "stage3_steps")},
                                "held_out_rows": len(held), "rows": rows, "machine": machine()})
    return 0


def task_mode(args) -> int:
    """Issue 25's benchmark 1 over ``args.runs`` (see the module docstring)."""
    import numpy as np
    import torch

    from searchkd.supernets.acm.run import ACMRunConfig, _evaluate, _tune_on_task, truncate_converted
    from searchkd.evaluate.text import _teacher, text_split
    from searchkd.io import read_json
    from searchkd.supernets.acm.task import accuracy, finetune_classifier

    per_budget: dict[float, dict] = {}
    for run_dir in args.runs.split(","):
        run = read_json(Path(run_dir) / "acm.json")
        c, a = run["config"], run["acm"]
        if not c.get("task"):
            raise SystemExit(f"{run_dir}: not a --task run")
        teacher = _teacher(c["model"], None, "cpu")
        cfg = ACMRunConfig(**{k: tuple(v) if k == "budgets" else v for k, v in c.items()})
        task = _tune_on_task(cfg, teacher, teacher.model.eval())
        dense = task["dense"]
        _, held = text_split(c["data"], teacher, c["seed"])
        batches = [held.tensors(range(i, min(i + 32, len(held)))) for i in range(0, len(held), 32)]
        with torch.no_grad():
            ref = [dense(input_ids=i, attention_mask=m).last_hidden_state for i, m in batches]
        # --steps N: the static cut gets N task steps (N = stage 3's: the task steps the ACM got);
        # default: as many as the ACM's three stages together (only stage 3 of them sees the task)
        steps = a["stage1_steps"] + a["stage2_steps"] + a["stage3_steps"] if args.steps is None else args.steps
        for r in run["rows"]:
            # the static cut spends what the ACM spent on the task's test sentences (runs made
            # before acm.json kept task_fraction: on the held-out text, 0.02 apart at 0.5)
            frac = r.get("task_fraction", r["fraction"])
            static = truncate_converted(dense, min(1.0, frac), c.get("convert", "ffn"))
            head = copy.deepcopy(task["head"])
            finetune_classifier(static, head, task["split"].train, steps=steps, batch_size=a["batch_size"],
                                seed=c["seed"], name="stage3")
            agree = _evaluate(static, ref, batches, acm=False)
            k = [np.asarray(h, dtype=float) for h in r["k_distribution"]]
            d = per_budget.setdefault(r["budget"], {"acm_accuracy": [], "static_accuracy": [], "acm_cosine": [],
                                                    "static_cosine": [], "fraction": [], "max_k_share": []})
            d["acm_accuracy"].append(r["task_accuracy"])
            d["static_accuracy"].append(accuracy(static, head, task["split"].test))
            d["acm_cosine"].append(r["embedding_cosine"])
            d["static_cosine"].append(agree["embedding_cosine"])
            d["fraction"].append(frac)
            d["max_k_share"].append([float(h.max() / h.sum()) for h in k])
            print(f"{run_dir} b={r['budget']:g} frac {frac:.3f}: ACM acc {d['acm_accuracy'][-1]:.3f} cos "
                  f"{d['acm_cosine'][-1]:.4f} | static cut +{steps} steps acc {d['static_accuracy'][-1]:.3f} cos "
                  f"{d['static_cosine'][-1]:.4f} | largest share at one k {max(d['max_k_share'][-1]):.3f}", flush=True)
    write_json(Path(args.out), {"runs": args.runs.split(","),
                                "static_steps": "stage1 + stage2 + stage3 steps of each run" if args.steps is None else args.steps,
                                "rows": _aggregate(per_budget), "machine": machine()})
    return 0


def _aggregate(per_budget: dict) -> list[dict]:
    """Mean and sd over the runs (seeds) of every measured list, per budget."""
    import numpy as np

    rows = []
    for b, d in sorted(per_budget.items()):
        stat = {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "values": v}
                for k, v in d.items() if k != "max_k_share"}
        rows.append({"budget": b, **stat, "max_k_share_per_layer": d["max_k_share"],
                     "largest_k_share": max(max(x) for x in d["max_k_share"])})
    return rows


def merge(args) -> int:
    """``--merge A.json,B.json``: files of ``--runs`` (e.g. one per seed, run as each finished)
    combined into one table: their per-run values concatenated, then :func:`_aggregate`."""
    from searchkd.io import read_json

    per_budget: dict[float, dict] = {}
    runs = []
    for f in args.merge.split(","):
        data = read_json(Path(f))
        runs += data["runs"]
        for r in data["rows"]:
            d = per_budget.setdefault(r["budget"], {})
            for k, v in r.items():
                if isinstance(v, dict) and "values" in v:
                    d.setdefault(k, []).extend(v["values"])
            d.setdefault("max_k_share", []).extend(r["max_k_share_per_layer"])
    rows = _aggregate(per_budget)
    write_json(Path(args.out), {"runs": runs, "merged_from": args.merge.split(","),
                                "static_steps": "stage1 + stage2 + stage3 steps of each run", "rows": rows,
                                "machine": machine()})
    for r in rows:
        print(f"b={r['budget']:g} (n={len(r['acm_accuracy']['values'])}): ACM acc {r['acm_accuracy']['mean']:.3f} "
              f"± {r['acm_accuracy']['sd']:.3f} | static {r['static_accuracy']['mean']:.3f} ± "
              f"{r['static_accuracy']['sd']:.3f} | emb cos ACM {r['acm_cosine']['mean']:.4f} static "
              f"{r['static_cosine']['mean']:.4f} | largest share at one k {r['largest_k_share']:.3f}")
    return 0


def wall_only(args, run: dict, dense, batches, held) -> int:
    from searchkd.supernets.acm.run import run_batches, truncate_converted

    c = run["config"]
    from searchkd.supernets.acm.model import all_learners
    from searchkd.supernets.acm.io import load_acm

    def once(model, acm: bool) -> float:
        return run_batches(model, batches, acm)

    rows = []
    for r in run["rows"]:
        acm_model, _ = load_acm(r["model_dir"])
        full = all_learners(acm_model)
        static = truncate_converted(dense, min(1.0, r["fraction"]), c.get("convert", "ffn"))
        best = {"dense": float("inf"), "acm": float("inf"), "acm_all_learners": float("inf"), "static": float("inf")}
        once(dense, False), once(acm_model, True)  # warm-up
        for _ in range(args.reps):  # interleaved: a slow moment of a shared machine hits all four
            best["dense"] = min(best["dense"], once(dense, False))
            best["acm"] = min(best["acm"], once(acm_model, True))
            best["acm_all_learners"] = min(best["acm_all_learners"], once(full, True))
            best["static"] = min(best["static"], once(static, False))
        row = {"budget": r["budget"], "ffn_fraction": r["fraction"], "seconds": best,
               "acm_over_dense": best["acm"] / best["dense"], "static_over_dense": best["static"] / best["dense"],
               "all_learners_over_dense": best["acm_all_learners"] / best["dense"]}
        rows.append(row)
        print(f"b={r['budget']:g} frac {r['fraction']:.3f}  ACM/dense {row['acm_over_dense']:.3f}  "
              f"all learners/dense {row['all_learners_over_dense']:.3f}  static/dense {row['static_over_dense']:.3f}",
              flush=True)
    write_json(Path(args.out), {"run": str(args.run), "model": run["config"]["model"], "learners": run["config"]["learners"],
                                "held_out_rows": len(held), "batch": [run["config"]["eval_batch_size"], 128],
                                "reps": args.reps, "threads": args.threads, "rows": rows, "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
