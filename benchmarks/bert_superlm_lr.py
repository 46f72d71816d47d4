"""The SuperLM's learning rate chosen on the downstream task's validation split (issue 20):
combines the validation reports of ``bert_finetune_recipe.py --roles student`` over SuperLMs
trained at several lrs (and, as the reference line, one ``--roles truncated-teacher`` report:
the same students cut from the teacher with no SuperLM training) into one JSON, and names the
lr with the best mean validation accuracy over the students.

    PYTHONPATH=. python benchmarks/bert_superlm_lr.py --lr 1e-3=runs/val_superlm_lr1e-3.json \
        --lr 2e-4=runs/val_superlm_lr2e-4.json --lr 1e-4=runs/val_superlm_lr1e-4.json \
        --truncated runs/val_truncated.json --out benchmarks/out/bert_superlm_lr.json

No test split is read anywhere on this path (``bert_finetune_recipe.py`` splits the task's
training part again).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _rows(report: dict, role: str) -> list[dict]:
    keep = ("arch", "val_accuracy", "val_accuracies", "work", "steps", "seeds", "lr")
    return [{k: r[k] for k in keep if k in r} for r in report["rows"] if r["role"] == role]


def combine(by_lr: dict[str, dict], truncated: dict | None) -> dict:
    """``by_lr``: SuperLM lr → its student validation report; the per-arch table and the choice."""
    out: dict = {"what": "the SuperLM's learning rate chosen on the downstream task's validation split: the students "
                         "of a SuperLM trained 300 steps of 16 rows at each lr, fine-tuned 100 steps at lr 1e-3 on 75 % "
                         "of pydoc-topics' training part and scored on the other 25 % (never the test split); "
                         "'truncated' is the same shape cut from the teacher with no SuperLM training",
                 "by_superlm_lr": {}, "by_arch": {}}
    for lr, rep in by_lr.items():
        rows = _rows(rep, "student")
        if not rows:
            raise SystemExit(f"error: the report for lr {lr} has no student rows")
        out["by_superlm_lr"][lr] = {"rows": rows, "mean_val": float(np.mean([r["val_accuracy"] for r in rows]))}
        for r in rows:
            out["by_arch"].setdefault(r["arch"], {})[lr] = r["val_accuracy"]
    if truncated is not None:
        for r in _rows(truncated, "truncated-teacher"):
            out["by_arch"].setdefault(r["arch"], {})["truncated"] = r["val_accuracy"]
    archs = [set(r["arch"] for r in v["rows"]) for v in out["by_superlm_lr"].values()]
    if any(a != archs[0] for a in archs):
        raise SystemExit("error: the SuperLMs' reports score different students; compare like with like")
    out["chosen"] = max(out["by_superlm_lr"], key=lambda k: out["by_superlm_lr"][k]["mean_val"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lr", action="append", required=True, metavar="LR=REPORT",
                   help="a SuperLM lr and its bert_finetune_recipe.py --roles student report (repeat)")
    p.add_argument("--truncated", help="a bert_finetune_recipe.py --roles truncated-teacher report")
    p.add_argument("--out", default="runs/bert_superlm_lr.json")
    args = p.parse_args(argv)

    from searchkd.io import read_json, write_json

    by_lr = {}
    for item in args.lr:
        lr, _, path = item.partition("=")
        if not path or not Path(path).is_file():
            raise SystemExit(f"error: --lr wants LR=REPORT with an existing report, got {item!r}")
        by_lr[lr] = read_json(Path(path))
    out = combine(by_lr, read_json(Path(args.truncated)) if args.truncated else None)
    out["command"] = "python benchmarks/bert_superlm_lr.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_json(Path(args.out), out)
    for arch, accs in out["by_arch"].items():
        print(arch, " ".join(f"{k} {v:.3f}" for k, v in accs.items()))
    print("chosen", out["chosen"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
