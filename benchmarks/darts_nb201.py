"""DARTS-V1 / DARTS-V2 / SD-DARTS / SD-DARTS + a trained teacher on NAS-Bench-201 (issue 21),
with NB201's search settings (:mod:`searchkd.strategies.darts`) on CIFAR-10 *training* images,
at a CPU-sized supernet, a fixed w/α split and several seeds.

For every method, seed and epoch: the derived cell, its CIFAR-10 test accuracy in the NB201 table
(``nb201_cifar10.csv``; CIFAR-100 too with ``--nb201-pth`` = the official file), looked up after
the search and never used by it; the share of parameter-free edges (``none``, ``skip_connect``,
``avg_pool_3x3``) and of ``none`` edges; |λ_max|, the dominant Hessian eigenvalue of the
supernet's α-half cross-entropy w.r.t. α (power iteration with Hessian-vector products on a fixed
batch of un-augmented α-half images); the supernet's and the derived cell's α-half accuracy;
seconds per epoch (without the λ_max measurement).

The images: ``--images`` of ``cifar10_train_25k.npz`` (a stratified subset from split seed 0),
halved into w / α the same way for every seed. The teacher of ``sd-darts+teacher`` (ResNet-20
by default) is trained for ``--teacher-epochs`` on ``--teacher-images`` of the *other* training
images (never on the α half) and given to the search as ``--teacher-weights``.

Resumable: every run searches into ``--runs DIR/METHOD-SEED`` and resumes from its checkpoint;
a run already in the JSON with the same setup is skipped, so a killed benchmark continues.

    python benchmarks/darts_nb201.py --threads 1 --out benchmarks/out/darts_nb201.json   # docs/benchmarks.md's table
    python benchmarks/darts_nb201.py --epochs 1 --seeds 0 --images 256 --teacher-images 512 --out /tmp/smoke.json

The full protocol (NB201: 50 epochs, C=16, N=5, batch 64, all 25k + 25k images) is a GPU job:

    python benchmarks/darts_nb201.py --device cuda --width 16 --cells 5 --epochs 50 --images 25000 \\
        --teacher-images 0 --out runs/darts_nb201_full.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import NB201_CSV, SHARED, ground_truth, machine, write_json  # noqa: E402

TRAIN = SHARED / "images" / "cifar10_train_25k.npz"
#: method → (strategy, options); ``+teacher`` adds the trained teacher
METHODS = {"darts-v1": ("darts", {"order": 1}), "darts-v2": ("darts", {"order": 2}),
           "sd-darts": ("sd-darts", {}), "sd-darts+teacher": ("sd-darts", {})}
FREE = ("none", "skip_connect", "avg_pool_3x3")  # parameter-free ops


def ops_of(cell: str) -> list[str]:
    return [e.split("~")[0] for node in cell.split("+") for e in node.strip("|").split("|")]


def train_teacher(args: argparse.Namespace, runs: Path) -> dict:
    """ResNet (``--teacher``) trained on training images outside the search's subset."""
    import numpy as np
    import torch

    from searchkd.data.images import load_images
    from searchkd.distill.train import Images, TrainConfig, evaluate, train_model
    from searchkd.seeds import stream_seed
    from searchkd.teachers import build_teacher

    full = load_images(f"npz:{TRAIN}")
    seed = stream_seed(0, "split")  # the search's subset (DartsSearch's _split with split_seed 0)
    rest, sub = full.split_indices(args.images / len(full), seed + 1) if args.images < len(full) else ([], None)
    if len(rest) == 0:
        sys.exit("benchmark: --images leaves no other training images for the teacher; give --teacher-images 0")
    rng = np.random.default_rng(20230211)
    pick = np.sort(rng.permutation(rest)[:args.teacher_images])
    search = full.subset(sub, "search") if sub is not None else full
    _, alpha_half = search.split(0.5, seed)
    path = runs / "teacher.pt"
    torch.manual_seed(0)
    model = build_teacher(args.teacher, num_classes=10)
    cfg = TrainConfig(epochs=args.teacher_epochs, seed=0)
    rec = train_model(model, Images.from_set(full.subset(pick, "teacher")), config=cfg, ckpt_dir=runs / "teacher",
                      resume=True, meta={"images": pick.tolist()[:8], "n": len(pick)}, progress=False)
    torch.save(model.state_dict(), path)
    return {"name": args.teacher, "weights": str(path), "epochs": args.teacher_epochs, "train_images": len(pick),
            "acc_on_alpha_half": evaluate(model, Images.from_set(alpha_half)), "seconds": rec["seconds"]}


def one_run(method: str, seed: int, args: argparse.Namespace, teacher: dict | None, gt: dict, gt100: dict,
            runs: Path) -> dict:
    from searchkd.orchestrate.driver import prepare
    from searchkd.trials import write_json as write_cfg
    from searchkd.supernets.nb201_supernet import dominant_eigenvalue

    strategy, opts = METHODS[method]
    cfg = {"space": "nb201", "proxy": "derived_acc", "strategy": strategy, "budget": args.epochs, "seed": seed,
           "data": f"npz:{TRAIN}", "batch_size": args.batch_size, "device": args.device,
           "options": {"width": args.width, "cells": args.cells, "images": args.images, "split_seed": 0, **opts}}
    if method.endswith("+teacher") and args.teacher_images:
        cfg.update(teacher=teacher["name"], teacher_weights=teacher["weights"])
    elif method.endswith("+teacher"):  # no other images: the search trains it on its w half (--train-teacher)
        cfg.update(teacher=args.teacher)
        cfg["options"]["train_teacher"] = args.teacher_epochs
    plan = prepare(cfg)
    out = runs / f"{method}-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    write_cfg(out / "config.json", {"config": plan.config.to_dict()})
    sharp_path = out / "sharpness.json"
    sharp = {int(k): v for k, v in json.loads(sharp_path.read_text()).items()} if sharp_path.is_file() else {}

    def measure(epoch: int, loop: object) -> None:
        t0 = time.perf_counter()
        sharp[epoch] = dominant_eigenvalue(loop.val_loss(args.sharpness_images), loop.model.alphas,
                                           iters=args.sharpness_iters, tol=1e-3, seed=0)
        sharp_path.write_text(json.dumps(sharp))
        print(f"  {method} seed {seed} epoch {epoch}: {loop.records[-1]['arch']} λ_max {sharp[epoch]:.4g} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)

    t0 = time.perf_counter()
    plan.strategy_cls.run(plan.config, str(out), resume=True, progress=False, callback=measure)
    recs = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    last = recs[-1]
    epochs = []
    for r in recs:
        ops = ops_of(r["arch"])
        lam = sharp.get(r["epoch"])
        epochs.append({"epoch": r["epoch"], "cell": r["arch"], "test_acc": gt.get(r["arch"]),
                       "cifar100_test_acc": gt100.get(r["arch"]),
                       "parameter_free_share": sum(o in FREE for o in ops) / 6, "none_share": ops.count("none") / 6,
                       "abs_lambda_max": None if lam is None else abs(lam), "lambda_max": lam,
                       "supernet_acc": r["scores"]["supernet_acc"], "derived_acc": r["scores"]["derived_acc"],
                       "lr": r.get("lr"), "seconds": r["seconds"]})
    return {"method": method, "seed": seed, "cell": last["arch"], "test_acc": gt.get(last["arch"]),
            "cifar100_test_acc": gt100.get(last["arch"]),
            "parameter_free_edges": sum(o in FREE for o in ops_of(last["arch"])),
            "none_edges": ops_of(last["arch"]).count("none"),
            "supernet_acc": last["scores"]["supernet_acc"], "derived_acc": last["scores"]["derived_acc"],
            "seconds_per_epoch": statistics.median(r["seconds"] for r in recs),
            "seconds_this_session": time.perf_counter() - t0, "epochs": epochs}


def summarise(runs: list[dict]) -> dict:
    def ms(xs: list) -> list:
        xs = [x for x in xs if x is not None]
        return [statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0] if xs else [None, None]

    out = {}
    for m in dict.fromkeys(r["method"] for r in runs):
        rs = [r for r in runs if r["method"] == m]
        n_ep = min(len(r["epochs"]) for r in rs)
        per_epoch = [{"epoch": e + 1,
                      "parameter_free_share": ms([r["epochs"][e]["parameter_free_share"] for r in rs]),
                      "none_share": ms([r["epochs"][e]["none_share"] for r in rs]),
                      "abs_lambda_max": ms([r["epochs"][e]["abs_lambda_max"] for r in rs]),
                      "test_acc": ms([r["epochs"][e]["test_acc"] for r in rs])} for e in range(n_ep)]
        out[m] = {"n": len(rs), "seeds": [r["seed"] for r in rs], "test_acc": ms([r["test_acc"] for r in rs]),
                  "test_accs": [r["test_acc"] for r in rs], "cifar100_test_acc": ms([r["cifar100_test_acc"] for r in rs]),
                  "parameter_free_edges": ms([r["parameter_free_edges"] for r in rs]),
                  "supernet_acc": ms([r["supernet_acc"] for r in rs]), "derived_acc": ms([r["derived_acc"] for r in rs]),
                  "seconds_per_epoch": ms([r["seconds_per_epoch"] for r in rs]), "cells": [r["cell"] for r in rs],
                  "per_epoch": per_epoch}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=1536, help="search images of the 25k training file (halves: w / α)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--cells", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--sharpness-images", type=int, default=64)
    ap.add_argument("--sharpness-iters", type=int, default=5)
    ap.add_argument("--teacher", default="resnet20")
    ap.add_argument("--teacher-epochs", type=int, default=3)
    ap.add_argument("--teacher-images", type=int, default=8000, help="other training images the teacher trains on "
                    "(0: the search trains it on its w half, --train-teacher)")
    ap.add_argument("--nb201-pth", help="the official NAS-Bench-201 file: adds CIFAR-100 test accuracy")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "darts_nb201", help="the searches' directories")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "darts_nb201.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"benchmark: unknown method(s) {unknown} (known: {', '.join(METHODS)})")
    gt = ground_truth(NB201_CSV)
    gt100: dict = {}
    if args.nb201_pth:
        from searchkd.data.ground_truth import read_ground_truth

        gt100 = dict(read_ground_truth(f"nb201:{args.nb201_pth}", "cifar100_test_acc", "cifar100"))
    setup = {"data": TRAIN.name, "search_images": args.images, "w_half": args.images // 2,
             "alpha_half": args.images - args.images // 2, "epochs": args.epochs, "batch_size": args.batch_size,
             "supernet": {"C": args.width, "N": args.cells}, "device": args.device,
             "settings": "NAS-Bench-201's (searchkd.strategies.darts defaults)",
             "sharpness": {"val_images": args.sharpness_images, "power_iterations": args.sharpness_iters},
             "sd_darts": {"K": 2, "T": 3.0, "lambda": 1.0, "voting": "soft"}, "teacher_kd": {"weight": 1.0, "T": 4.0},
             "teacher": {"name": args.teacher, "epochs": args.teacher_epochs, "images": args.teacher_images}}
    doc = {"benchmark": "darts_nb201", "machine": machine(), "setup": setup, "runs": []}
    if args.out.is_file():
        old = json.loads(args.out.read_text())
        if old.get("setup") == setup:
            doc["runs"], doc["teacher"] = old.get("runs", []), old.get("teacher")
    runs = args.runs
    runs.mkdir(parents=True, exist_ok=True)
    teacher = None
    if any(m.endswith("+teacher") for m in methods) and args.teacher_images:
        teacher = train_teacher(args, runs)
        doc["teacher"] = {k: v for k, v in teacher.items() if k != "weights"}
        print(f"teacher {args.teacher}: {teacher['acc_on_alpha_half']:.2f} % on the α half", flush=True)
    for s in seeds:
        for m in methods:
            if any(r["method"] == m and r["seed"] == s for r in doc["runs"]):
                continue
            r = one_run(m, s, args, teacher, gt, gt100, runs)
            doc["runs"].append(r)
            print(f"{m} seed {s}: {r['cell']} test {r['test_acc']} free edges {r['parameter_free_edges']} "
                  f"{r['seconds_per_epoch']:.1f} s/epoch", flush=True)
            doc["summary"] = summarise(doc["runs"])
            write_json(args.out, doc)  # after every run: a killed benchmark keeps what it measured


if __name__ == "__main__":
    main()
