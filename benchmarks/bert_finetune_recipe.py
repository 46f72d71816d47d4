"""The fine-tuning learning rate of the downstream task (issue 20 item 2), chosen on cells the
reported figures never use: the task's *train* part (the search's split, seed 0) is split again
(``--val`` of it held out, seed 1), every model is fine-tuned on the rest and scored on that
validation part; ``pydoc-topics``' test split is not read.

Models: the two students of ``bert_downstream.py`` (its SuperLM in ``--work``), each as the
SuperLM slice, from random init and cut from the teacher, at each of ``--lrs`` for ``--steps``.
The lr with the best mean validation accuracy over every model is the one the benchmark uses.

    PYTHONPATH=. python benchmarks/bert_finetune_recipe.py --steps 100 --out benchmarks/out/bert_finetune_recipe.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="runs/bert_downstream")
    p.add_argument("--lrs", default="1e-4,3e-4,1e-3")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--val", type=float, default=0.25)
    p.add_argument("--seeds", default="0", help="fine-tuning seeds; a row keeps their mean")
    p.add_argument("--max-params", type=float, default=6.0)
    p.add_argument("--roles", default="student,random,truncated-teacher",
                   help="which models (e.g. student alone, to compare two SuperLMs on the validation split)")
    p.add_argument("--out", default="runs/bert_finetune_recipe.json")
    args = p.parse_args(argv)

    import torch

    from searchkd.data.text_tasks import load_task
    from searchkd.distill.downstream import finetune_accuracy
    from searchkd.evaluate.text import _qkv, _teacher
    from searchkd.io import read_json, write_json
    from searchkd.spaces._bert_net import BertNet
    from searchkd.supernets import SuperLM
    from searchkd.supernets.superlm_init import cut_net, pretrained_shape

    torch.set_num_threads(1)
    out = Path(args.out)
    report = read_json(out) if out.is_file() else {"rows": []}
    report["command"] = "python benchmarks/bert_finetune_recipe.py " + " ".join(argv or sys.argv[1:])
    # a row is reused only when it was made with the same SuperLM, steps and seeds (rows written
    # before these were recorded: steps 100, seed 0, runs/bert_downstream)
    setting = (str(Path(args.work)), args.steps, args.seeds)
    done = {(r["role"], r["arch"], r["lr"]) for r in report["rows"]
            if (r.get("work", "runs/bert_downstream"), r.get("steps", 100), r.get("seeds", "0")) == setting}
    run_dir = Path(args.work) / "search"
    trials = [json.loads(x) for x in (run_dir / "trials.jsonl").read_text().splitlines()]
    ranked = sorted(trials, key=lambda t: -t["scores"]["superlm"])
    archs = list(dict.fromkeys([next(t["arch"] for t in ranked if t["params"] <= args.max_params), ranked[0]["arch"]]))
    teacher = _teacher("minilm-l6", None, "cpu")
    lm = SuperLM.load(run_dir / "supernet", _qkv(teacher), teacher=teacher.info.id, device="cpu")
    task = load_task("pydoc-topics")
    train, _test = task.split(0.3, seed=0)  # the benchmark's split; _test is never read here
    fit, val = train.split(args.val, seed=1)
    tok = teacher.tokenizer
    tr = (*fit.encode(tok, 64), torch.from_numpy(fit.labels))
    va = (*val.encode(tok, 64), torch.from_numpy(val.labels))
    base = teacher.model
    t_state, t_shape = {k: v.detach().cpu() for k, v in base.state_dict().items()}, pretrained_shape(base.config)
    cfg = lm.net.config
    report.update({"task": task.name, "n_fit": len(fit), "n_val": len(val), "steps": args.steps,
                   "majority_val": float(np.bincount(val.labels).max() / len(val)), "archs": archs})
    for lr in [float(x) for x in args.lrs.split(",")]:
        for arch in archs:
            a = lm.space.arch(arch)
            shape_cfg = type(cfg)(a.shape(), vocab_size=cfg.vocab_size, max_position=cfg.max_position,
                                  type_vocab=cfg.type_vocab, dropout=cfg.dropout, pooler=False)
            makers = {"student": lambda: lm.extract(arch).cpu(),
                      "random": lambda: (torch.manual_seed(0), BertNet(shape_cfg))[1],
                      "truncated-teacher": lambda: cut_net(shape_cfg, t_state, t_shape)}
            for role, make in makers.items():
                if role not in args.roles.split(",") or (role, arch, lr) in done:
                    continue
                t0 = time.perf_counter()
                accs = [finetune_accuracy(make(), a.hidden, tr, va, classes=len(task.classes), steps=args.steps,
                                          lr=lr, seed=int(sd)) for sd in args.seeds.split(",")]
                acc = float(np.mean(accs))
                report["rows"] = [r for r in report["rows"] if (r["role"], r["arch"], r["lr"]) != (role, arch, lr)]
                report["rows"].append({"role": role, "arch": arch, "lr": lr, "val_accuracy": acc,
                                       "work": setting[0], "steps": args.steps, "seeds": args.seeds,
                                       "val_accuracies": accs, "seconds": time.perf_counter() - t0})
                print(f"lr {lr:g} {role:<18} {arch:<20} {acc:.3f}", flush=True)
                write_json(out, report)
    by_lr: dict[float, list[float]] = {}
    for r in report["rows"]:
        by_lr.setdefault(r["lr"], []).append(r["val_accuracy"])
    report["mean_val_by_lr"] = {str(k): float(np.mean(v)) for k, v in sorted(by_lr.items())}
    report["chosen_lr"] = max(by_lr, key=lambda k: np.mean(by_lr[k]))
    report["machine"] = {"torch": torch.__version__, "threads": 1, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(out, report)
    print(report["mean_val_by_lr"], "chosen", report["chosen_lr"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
