"""Issue 25's benchmark 2: quality against compute, the authors' stage 3 against the one
searchkd ran before issue 25, from the same stage-1/2 checkpoints.

For each finished ``searchkd acm --task`` run of ``--runs`` (one per seed), the run's own
converted models are the authors' stage 3 (task cross-entropy + 0.1·budget + 0.05·entropy +
0.05·diversity). The earlier stage 3 is retrained here from the run's ``stages/stage{1,2}.pt``
for every budget: the MSE of the final hidden states against the task-tuned dense model,
+ 0.1·budget + 0.05·diversity, no entropy term, the same steps, lr, batch size and seeded
batches, calibrated before (where the run was) and after it and routed as the run was. The classifier it is measured with is the
tuned dense model's, untouched (the earlier stage 3 has no task: it learns to reproduce the
dense states that classifier reads). Both are measured on the task's test split (accuracy, and
the learner compute spent on its sentences) and on the held-out text (sentence-embedding
cosine with the dense model, mean k and the largest share of real tokens at one k per layer).

    PYTHONPATH=. python benchmarks/acm_stage3.py --runs runs/acm-s0,runs/acm-s1,runs/acm-s2 --out F.json

Writes ``--out`` (default ``runs/acm_stage3.json``) and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, write_json  # noqa: E402

VARIANTS = ("authors", "before_issue_25")


def load_stages(model, stages: Path, want: dict | None = None) -> None:
    """The learners of ``stage1.pt`` and the gates of ``stage2.pt`` into ``model`` (acmized);
    with ``want`` (stage name → the key :func:`~searchkd.supernets.acm.train.stage_meta` gives
    the run), a checkpoint made from another model, text or settings is refused, not loaded."""
    import torch

    from searchkd.supernets.acm.steps import meta_differences

    params = dict(model.named_parameters())
    with torch.no_grad():
        for stage in ("stage1", "stage2"):
            path = stages / f"{stage}.pt"
            if not path.is_file():
                raise SystemExit(f"{path} not found: this benchmark needs the run's stage checkpoints")
            state = torch.load(path, map_location="cpu", weights_only=True)
            diff = meta_differences(state.get("meta"), want[stage]) if want else []
            if diff:
                raise SystemExit(f"{path} is not this run's {stage} ({'; '.join(diff[:4])})")
            for n, p in state["params"].items():
                params[n].copy_(p)


def earlier_stage3(run_dir: Path, run: dict) -> tuple[list[dict], dict]:
    """Per budget of ``run``: the earlier stage 3 (see the module docstring), measured; and the
    run's own rows re-measured in the same way (task accuracy from its saved classifier)."""
    import torch

    from searchkd.data.text import text_split
    from searchkd.supernets.acm.io import load_acm
    from searchkd.supernets.acm.model import acm_modules, acmize, count_flops, reset_flops
    from searchkd.supernets.acm.run import (CALIBRATION_TOLERANCE, ACMRunConfig, _evaluate, _load_head, _tune_on_task,
                                            source_id)
    from searchkd.supernets.acm.task import accuracy
    from searchkd.supernets.acm.train import (ACMConfig, calibrate_budget, calibrate_logits, data_id, stage3,
                                              stage_meta)
    from searchkd.teachers.text import text_teacher

    c, a = run["config"], run["acm"]
    cfg = ACMRunConfig(**{k: tuple(v) if k == "budgets" else v for k, v in c.items()})
    teacher = text_teacher(c["model"], None, "cpu")
    task = _tune_on_task(cfg, teacher, teacher.model.eval())
    dense, head = task["dense"], task["head"]
    train, held = text_split(c["data"], teacher, c["seed"])
    ids, mask = train.tensors(range(len(train)))
    batches = [held.tensors(range(i, min(i + 32, len(held)))) for i in range(0, len(held), 32)]
    with torch.no_grad():
        ref = [dense(input_ids=i, attention_mask=m).last_hidden_state for i, m in batches]
    ac = ACMConfig(**{k: v for k, v in a.items() if k in {f.name for f in dataclasses.fields(ACMConfig)}})
    earlier = dataclasses.replace(ac, entropy_weight=0.0, checkpoint_every=0)

    def measure(model, classifier) -> dict:
        row = _evaluate(model, ref, batches, acm=True)
        reset_flops(model)
        row["task_accuracy"] = accuracy(model, classifier, task["split"].test)
        row["task_fraction"] = count_flops(model)["fraction"]
        return {k: row[k] for k in ("task_accuracy", "task_fraction", "fraction", "embedding_cosine", "mean_k",
                                    "max_k_share")}

    base = acmize(copy.deepcopy(dense), c["learners"], init=a["init"], seed=c["seed"], convert=c.get("convert", "ffn"))
    key = {s: stage_meta(source_id(run["base"]["id"], cfg), ac, data_id(ids, mask), s) for s in ("stage1", "stage2")}
    load_stages(base, run_dir / "stages", key)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    rows = []
    for r in run["rows"]:
        b = float(r["budget"])
        theirs, _ = load_acm(r["model_dir"], base_id=run["base"]["id"])
        their_head = copy.deepcopy(head)
        _load_head(their_head, Path(r["model_dir"]))
        base.load_state_dict(state)
        for m in acm_modules(base):
            m.routing, m.k_offset = c["routing"], 0.0
        if c.get("calibrate_before_stage3"):  # as the run did
            calibrate_logits(base, ids, mask, b, seed=c["seed"], tolerance=CALIBRATION_TOLERANCE)
        stage3(base, dense, ids, mask, b, earlier, meta={}, ckpt=None, progress=False)
        calibration = calibrate_budget(base, ids, mask, b, seed=c["seed"], tolerance=CALIBRATION_TOLERANCE)
        rows.append({"budget": b, "authors": measure(theirs.eval(), their_head),
                     "before_issue_25": {**measure(base.eval(), head), "calibration": calibration}})
        print(f"{run_dir} b={b:g}: authors' acc {rows[-1]['authors']['task_accuracy']:.3f} compute "
              f"{rows[-1]['authors']['task_fraction']:.3f} | earlier acc {rows[-1]['before_issue_25']['task_accuracy']:.3f}"
              f" compute {rows[-1]['before_issue_25']['task_fraction']:.3f}", flush=True)
    return rows, task["summary"]


def aggregate(per_run: list[list[dict]]) -> list[dict]:
    """Per budget and variant: mean and sd over the runs of the scalars, the per-layer lists averaged."""
    import numpy as np

    out = []
    for i, first in enumerate(per_run[0]):
        row = {"budget": first["budget"]}
        for v in VARIANTS:
            got = [rows[i][v] for rows in per_run]
            stats = {}
            for k in ("task_accuracy", "task_fraction", "fraction", "embedding_cosine"):
                x = [g[k] for g in got]
                stats[k] = {"mean": float(np.mean(x)), "sd": float(np.std(x, ddof=1)) if len(x) > 1 else 0.0, "values": x}
            stats["mean_k"] = [float(m) for m in np.mean([g["mean_k"] for g in got], axis=0)]
            stats["max_k_share"] = [g["max_k_share"] for g in got]
            stats["layers_over_80"] = int(sum(s > 0.8 for g in got for s in g["max_k_share"]))
            row[v] = stats
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="comma-separated finished `searchkd acm --task` runs, one per seed")
    p.add_argument("--out", default=str(RUNS / "acm_stage3.json"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    from searchkd.io import read_json

    torch.set_num_threads(args.threads)
    runs = [Path(r) for r in args.runs.split(",")]
    loaded = []
    for r in runs:
        run = read_json(r / "acm.json")
        if not run["config"].get("task"):
            raise SystemExit(f"{r}: not a --task run")
        loaded.append(run)
    per_run, dense = [], []
    for r, run in zip(runs, loaded):
        rows, summary = earlier_stage3(r, run)
        per_run.append(rows)
        dense.append(summary["dense_accuracy"])
    table = aggregate(per_run)
    write_json(Path(args.out), {"runs": [str(r) for r in runs], "dense_accuracy": dense,
                                "steps": {k: loaded[0]["acm"][k] for k in ("stage1_steps", "stage2_steps", "stage3_steps",
                                                                           "batch_size")},
                                "rows": table, "machine": machine()})
    for row in table:
        for v in VARIANTS:
            s = row[v]
            print(f"b={row['budget']:g} {v:16s} acc {s['task_accuracy']['mean']:.3f} ± {s['task_accuracy']['sd']:.3f} "
                  f"compute {s['task_fraction']['mean']:.3f} emb cos {s['embedding_cosine']['mean']:.3f} "
                  f"mean k {' '.join(f'{k:.2f}' for k in s['mean_k'])} layers > .8: {s['layers_over_80']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
