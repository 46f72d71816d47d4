"""DARTS vs SD-DARTS vs teacher-guided SD-DARTS on NAS-Bench-201 (issue 11), on a CPU-sized
supernet, a fixed train/val split of a CIFAR-10 subset and several seeds.

For every method and seed: the derived cell after each epoch and its CIFAR-10 test accuracy
in the NB201 table (looked up after the search, never used by it); the sharpness, i.e. the
dominant Hessian eigenvalue of the supernet's validation cross-entropy w.r.t. α (power
iteration with Hessian-vector products on a fixed batch of validation images) at a few epochs;
the supernet's validation accuracy vs the derived cell's with the supernet's weights; seconds
per epoch (without the sharpness measurements).

The images: ``--images`` of ``cifar10_test_10k.npz`` (stratified, a fixed seed), split in halves
(w / α) the same way for every seed (``split_seed`` 0). The teacher of the teacher-guided runs
(``--teacher``, ResNet-20 by default) is trained for ``--teacher-epochs`` on the *other* images
of the 10k, so it never saw an image of the search; its accuracy on the search's images is
reported.

    python benchmarks/darts_nb201.py --threads 1            # the README's table (≈ 40 min on a busy 2-core machine)
    python benchmarks/darts_nb201.py --epochs 1 --seeds 0 --images 512 --teacher-epochs 1 --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import NB201_CSV, OUT, SHARED, ground_truth, machine, write_json  # noqa: E402

CIFAR10K = SHARED / "images" / "cifar10_test_10k.npz"
#: ``sd-darts@epoch``: SD-DARTS whose teachers are the previous epochs' supernets (sd_interval 0)
METHODS = ("darts", "sd-darts", "sd-darts@epoch", "sd-darts+teacher")
FREE = ("none", "skip_connect", "avg_pool_3x3")  # parameter-free ops


def make_data(tmp: Path, n: int) -> tuple[Path, object, object]:
    """The search subset (written as an npz) and the rest of the 10k (the teacher's images)."""
    from searchkd.data.images import load_images

    full = load_images(f"npz:{CIFAR10K}")
    rest, sub = full.split_indices(n / len(full), seed=20230211)
    path = tmp / "subset.npz"
    np.savez(path, x=full.x[sub], y=full.y[sub])
    return path, full.subset(rest, "cifar10-10k[teacher]"), full.subset(sub, "cifar10-10k[search]")


def train_teacher(name: str, epochs: int, images: object, held: object, tmp: Path, seed: int = 0) -> dict:
    import torch

    from searchkd.distill.train import Images, TrainConfig, evaluate, train_model
    from searchkd.seeds import teacher_seed
    from searchkd.teachers import build_teacher

    torch.manual_seed(teacher_seed(seed))
    model = build_teacher(name, num_classes=10)
    t0 = time.perf_counter()
    train_model(model, Images.from_set(images), config=TrainConfig(epochs=epochs, batch_size=128, seed=seed),
                progress=False)
    path = tmp / "teacher.pt"
    torch.save(model.state_dict(), path)
    return {"name": name, "weights": str(path), "epochs": epochs, "train_images": len(images.y),
            "acc_on_search_images": evaluate(model, Images.from_set(held)), "seconds": time.perf_counter() - t0}


def one_run(method: str, seed: int, args: argparse.Namespace, data: Path, teacher: dict | None, gt: dict, tmp: Path) -> dict:
    import json

    from searchkd.orchestrate.driver import prepare
    from searchkd.supernets.nb201_supernet import dominant_eigenvalue

    strategy = method.split("+")[0].split("@")[0]
    cfg = {"space": "nb201", "proxy": "derived_acc", "strategy": strategy, "budget": args.epochs, "seed": seed,
           "data": f"npz:{data}", "batch_size": 64, "device": args.device,
           "options": {"width": args.width, "cells": args.cells, "split_seed": 0}}
    if method.endswith("@epoch"):
        cfg["options"]["sd_interval"] = 0
    if method.endswith("+teacher"):
        cfg.update(teacher=teacher["name"], teacher_weights=teacher["weights"])
    plan = prepare(cfg)
    out = tmp / f"{method}-{seed}"
    sharp: dict[int, float] = {}

    def measure(epoch: int, loop: object) -> None:
        if epoch in args.sharpness_at:
            t0 = time.perf_counter()
            sharp[epoch] = dominant_eigenvalue(loop.val_loss(args.sharpness_images), loop.model.alphas,
                                               iters=args.sharpness_iters, tol=1e-3, seed=0)
            print(f"  {method} seed {seed} epoch {epoch}: sharpness {sharp[epoch]:.4g} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)

    t0 = time.perf_counter()
    plan.strategy_cls.run(plan.config, str(out), callback=measure)
    recs = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    last = recs[-1]
    cell = last["arch"]
    ops = [e.split("~")[0] for node in cell.split("+") for e in node.strip("|").split("|")]
    return {"method": method, "seed": seed, "cell": cell, "test_acc": gt.get(cell),
            "parameter_free_edges": sum(o in FREE for o in ops), "none_edges": ops.count("none"),
            "supernet_acc": last["scores"]["supernet_acc"], "derived_acc": last["scores"]["derived_acc"],
            "gap": last["scores"]["supernet_acc"] - last["scores"]["derived_acc"],
            "sharpness": {str(k): v for k, v in sorted(sharp.items())},
            "seconds_per_epoch": statistics.median(r["seconds"] for r in recs),
            "seconds": time.perf_counter() - t0,
            "epochs": [{"epoch": r["epoch"], "cell": r["arch"], "test_acc": gt.get(r["arch"]),
                        "supernet_acc": r["scores"]["supernet_acc"], "derived_acc": r["scores"]["derived_acc"]}
                       for r in recs]}


def summarise(runs: list[dict]) -> dict:
    def ms(xs: list) -> list:
        xs = [x for x in xs if x is not None]
        return [statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0] if xs else [None, None]

    out = {}
    for m in dict.fromkeys(r["method"] for r in runs):
        rs = [r for r in runs if r["method"] == m]
        epochs = sorted({e for r in rs for e in r["sharpness"]}, key=int)
        out[m] = {"n": len(rs), "test_acc": ms([r["test_acc"] for r in rs]), "gap": ms([r["gap"] for r in rs]),
                  "supernet_acc": ms([r["supernet_acc"] for r in rs]), "derived_acc": ms([r["derived_acc"] for r in rs]),
                  "parameter_free_edges": ms([r["parameter_free_edges"] for r in rs]),
                  "sharpness": {e: ms([r["sharpness"].get(e) for r in rs]) for e in epochs},
                  "seconds_per_epoch": ms([r["seconds_per_epoch"] for r in rs]), "cells": [r["cell"] for r in rs]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=1536, help="search images (split in halves: w / α)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--cells", type=int, default=1)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--sharpness-at", default="", help="epochs to measure sharpness at (default: 1, the middle, the last)")
    ap.add_argument("--sharpness-images", type=int, default=128)
    ap.add_argument("--sharpness-iters", type=int, default=6)
    ap.add_argument("--teacher", default="resnet20")
    ap.add_argument("--teacher-epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT / "darts_nb201.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    args.sharpness_at = ({int(e) for e in args.sharpness_at.split(",")} if args.sharpness_at
                         else {1, max(1, args.epochs // 2), args.epochs})
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    gt = ground_truth(NB201_CSV)
    doc = {"benchmark": "darts_nb201", "machine": machine(),
           "setup": {"data": str(CIFAR10K.name), "search_images": args.images, "train_w": args.images // 2,
                     "val_alpha": args.images - args.images // 2, "epochs": args.epochs, "batch_size": 64,
                     "supernet": {"C": args.width, "N": args.cells}, "seeds": seeds, "device": args.device,
                     "sharpness": {"epochs": sorted(args.sharpness_at), "val_images": args.sharpness_images,
                                   "power_iterations": args.sharpness_iters},
                     "sd_darts": {"K": 2, "T": 3.0, "lambda": 1.0, "voting": "soft"},
                     "teacher_kd": {"weight": 1.0, "T": 4.0}},
           "runs": []}
    with tempfile.TemporaryDirectory(prefix="darts-bench-") as d:
        tmp = Path(d)
        data, rest, sub = make_data(tmp, args.images)
        teacher = None
        if any(m.endswith("+teacher") for m in methods):
            teacher = train_teacher(args.teacher, args.teacher_epochs, rest, sub, tmp)
            doc["teacher"] = {k: v for k, v in teacher.items() if k != "weights"}
            print(f"teacher {args.teacher}: {teacher['acc_on_search_images']:.2f} % on the search images "
                  f"({teacher['seconds']:.0f} s)", flush=True)
        for m in methods:
            for s in seeds:
                r = one_run(m, s, args, data, teacher, gt, tmp)
                doc["runs"].append(r)
                print(f"{m} seed {s}: {r['cell']} test {r['test_acc']} supernet {r['supernet_acc']:.2f} derived "
                      f"{r['derived_acc']:.2f} {r['seconds_per_epoch']:.1f} s/epoch", flush=True)
                doc["summary"] = summarise(doc["runs"])
                write_json(args.out, doc)  # after every run: a killed benchmark keeps what it measured


if __name__ == "__main__":
    main()
