"""Seconds per DARTS / SD-DARTS epoch on this machine (issue 21): a few steps of the real search
loop (:class:`searchkd.strategies._darts_loop.DartsLoop`, NAS-Bench-201's settings, batch 64,
augmentation on) at each supernet size, one thread, extrapolated to a full NB201 epoch: 390 steps
(25,000 w-half and 25,000 α-half images in batches of 64) plus the per-epoch validation of the
supernet and of the derived cell on the 25,000 α-half images (timed on ``--eval-images``).

    python benchmarks/darts_epoch_time.py --out benchmarks/out/darts_epoch_time.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import SHARED, machine, write_json  # noqa: E402

TRAIN = SHARED / "images" / "cifar10_train_25k.npz"
NB201_STEPS, NB201_HALF = 25000 // 64, 25000


def time_size(width: int, cells: int, strategy: str, order: int, steps: int, eval_images: int, device: str) -> dict:
    from searchkd.orchestrate.driver import prepare
    from searchkd.strategies._darts_loop import DartsLoop

    cfg = {"space": "nb201", "proxy": "derived_acc", "strategy": strategy, "budget": 1, "seed": 0,
           "data": f"npz:{TRAIN}", "batch_size": 64, "device": device,
           "options": {"width": width, "cells": cells, "images": 2 * 64 * (steps + 1) + 2 * eval_images, "order": order}}
    plan = prepare(cfg)
    with tempfile.TemporaryDirectory() as d:
        loop = DartsLoop(plan.config, plan.strategy_cls.options(plan.config), Path(d))
        batches = loop.batches(0)
        loop.step(*next(batches))  # warm-up (allocations, the SD snapshots)
        if strategy == "sd-darts":
            loop._snapshot()
            loop._snapshot()
        times = []
        for _ in range(steps):
            b = next(batches)
            t0 = time.perf_counter()
            loop.step(*b)
            if strategy == "sd-darts":
                loop._snapshot()
            times.append(time.perf_counter() - t0)
        loop.val = (loop.val[0][:eval_images], loop.val[1][:eval_images])
        t0 = time.perf_counter()
        loop.evaluate()
        loop.evaluate([3] * 6)
        eval_s = time.perf_counter() - t0
    step_s = sorted(times)[len(times) // 2]
    return {"C": width, "N": cells, "strategy": strategy, "order": order, "steps_timed": steps,
            "seconds_per_step_median": step_s, "seconds_per_step": times,
            "eval_seconds_per_image": eval_s / eval_images,
            "nb201_epoch_seconds": step_s * NB201_STEPS + eval_s / eval_images * NB201_HALF}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16x5:darts:1:3,8x1:darts:1:6,8x1:darts:2:4,8x1:sd-darts:1:6",
                    help="CxN:strategy:order:steps, comma-separated")
    ap.add_argument("--eval-images", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "darts_epoch_time.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    for spec in args.sizes.split(","):
        size, strategy, order, steps = spec.split(":")
        c, n = (int(v) for v in size.split("x"))
        r = time_size(c, n, strategy, int(order), int(steps), args.eval_images, args.device)
        rows.append(r)
        print(f"C={c} N={n} {strategy} order {order}: {r['seconds_per_step_median']:.2f} s/step, "
              f"NB201 epoch ≈ {r['nb201_epoch_seconds'] / 60:.1f} min", flush=True)
    write_json(args.out, {"benchmark": "darts_epoch_time", "machine": machine(), "load_average": os.getloadavg(),
                          "threads": 1, "nb201_epoch": {"steps": NB201_STEPS, "alpha_half_images": NB201_HALF},
                          "rows": rows})


if __name__ == "__main__":
    main()
