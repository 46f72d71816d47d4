"""GPU check of the distill stage: a short real distillation, all on one CUDA device.

Trains a ResNet-56 teacher on a seeded 80 % split of the images, then distils three
students (ResNet-20 = 3-3-3, 1-1-1, 5-5-5) from it with KD in bf16 autocast and
channels-last, and reports images/s and held-out accuracies. Student epochs are cut,
if needed, so that the whole run fits ``--budget-s`` (default 8 minutes).

    PYTHONPATH=. python benchmarks/gpu_distill.py npz:../shared/data/images/cifar10_test_10k.npz
    PYTHONPATH=. python benchmarks/gpu_distill.py --tiny          # a CPU smoke run

Needs only torch, numpy and scipy. Writes ``OUT/gpu_distill.json`` (and the usual
``verify.json`` of the run) and prints the same JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STUDENTS = ("3-3-3", "1-1-1", "5-5-5")
DEFAULT_DATA = "npz:../shared/data/images/cifar10_test_10k.npz"


def write_result(out: Path, data: str, teacher: str) -> Path:
    """A result dir in the CONTRACT format holding the three students (scored by params)."""
    from searchkd.spaces import get_space

    space = get_space("resnet_cifar")
    out.mkdir(parents=True, exist_ok=True)
    trials = [{"i": i, "arch": a, "scores": {"params": space.cost(a)["params"]}, **space.cost(a), "seconds": 0.0}
              for i, a in enumerate(STUDENTS)]
    (out / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    best = max(trials, key=lambda t: t["scores"]["params"])
    result = {"searchkd_version": "benchmark", "config": {"space": "resnet_cifar", "proxy": "params",
              "strategy": "fixed", "teacher": teacher, "budget": len(trials), "seed": 0, "data": data},
              "best": {k: best[k] for k in ("arch", "scores", "params", "flops")}, "pareto": [],
              "trials": len(trials), "seconds": 0.0}
    (out / "result.json").write_text(json.dumps(result))
    return out / "result.json"


def tiny_data(out: Path, n: int = 300) -> str:
    from searchkd.data.images import load_images

    ds = load_images(DEFAULT_DATA if Path(DEFAULT_DATA[4:]).is_file() else "embedded")
    idx = ds.indices(min(n, len(ds)), seed=0)
    np.savez(out / "tiny.npz", x=ds.x[idx], y=ds.y[idx])
    return f"npz:{out / 'tiny.npz'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA, help=f"a --data spec (default {DEFAULT_DATA})")
    ap.add_argument("--out", default="runs/gpu_distill", help="result folder (default runs/gpu_distill)")
    ap.add_argument("--teacher", default="resnet56")
    ap.add_argument("--teacher-epochs", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=30, help="student epochs (cut to fit the budget)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget for everything (default 480)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="300 images, 1 epoch each, for a CPU smoke run")
    args = ap.parse_args(argv)

    import torch

    from searchkd.distill import prepare_teacher, run_distill
    from searchkd.devices import resolve_device
    from searchkd.spaces import get_space

    t0 = time.perf_counter()
    device = resolve_device(args.device)
    if device == "cpu":
        torch.set_num_threads(1)
        if not args.tiny:
            print("no CUDA device: this check is meant for a GPU (use --tiny for a CPU smoke run)", file=sys.stderr)
    else:
        torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = tiny_data(out) if args.tiny else args.data
    t_epochs, s_epochs = (1, 1) if args.tiny else (args.teacher_epochs, args.epochs)
    path = write_result(out, data, args.teacher)
    common = dict(data=data, batch_size=args.batch_size, lr=args.lr, seed=0, device=device, progress=None)

    teacher = prepare_teacher(path, train_teacher=t_epochs, **common)
    # Fit the students into what is left: a KD step costs the teacher's forward (≈ ⅓ of its
    # training step) plus the student's training step, scaled by FLOPs; 1.5× for safety.
    space = get_space("resnet_cifar")
    left = args.budget_s - (time.perf_counter() - t0) - 20.0
    t_flops = space.cost(teacher["arch"])["flops"]
    n_train = teacher.get("n_train") or 0
    per_epoch = sum(1.5 * (1 / 3 + space.cost(a)["flops"] / t_flops) for a in STUDENTS)
    ips = teacher.get("images_per_s")
    if ips and not args.tiny:
        fit = int(left / (per_epoch * n_train / ips)) if n_train else s_epochs
        if fit < s_epochs:
            print(f"budget: student epochs cut from {s_epochs} to {max(fit, 1)}", file=sys.stderr)
            s_epochs = max(fit, 1)
    report = run_distill(path, top=len(STUDENTS), controls=0, epochs=s_epochs, train_teacher=t_epochs,
                         plot=False, **common)
    total = time.perf_counter() - t0
    summary = {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "torch": torch.__version__,
        "data": data, "n_train": report["config"]["n_train"], "n_held_out": report["config"]["n_held_out"],
        "batch_size": args.batch_size, "precision": report["config"]["precision"],
        "teacher": {"arch": teacher["arch"], "epochs": t_epochs, "accuracy": teacher["accuracy"],
                    "images_per_s": teacher.get("images_per_s"), "seconds": teacher.get("train_seconds")},
        "students": [{"arch": r["arch"], "epochs": r["epochs"], "kd_accuracy": r["kd_accuracy"],
                      "images_per_s": r["kd_images_per_s"], "seconds": r["kd_seconds"]} for r in report["students"]],
        "total_seconds": total, "budget_s": args.budget_s, "within_budget": total <= args.budget_s,
    }
    (out / "gpu_distill.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
