"""DisWOT on NAS-Bench-201: ranking quality of its variants and the teacher-cache speed-up.

For N random cells (seeded), teacher = the best CIFAR-10 cell, one batch of real CIFAR-10
test images: the semantic and relation terms under the reference N(0,1) init and under the
networks' default init, for several seeds; Kendall τ / Spearman ρ of each term and of
their sums vs ``cifar10_test_acc``; plus seconds per cell with and without the teacher
cache. The teacher is initialised from its own seed stream (``searchkd.seeds.teacher_seed``),
as the engine does, never from the students' seed. The default variant is chosen on one
half of the cells (``selection``) and its quality reported on the other half (``report``).
Usage:

    python benchmarks/diswot_nb201.py --cells 1000 --seeds 0,1,2 --out benchmarks/out/diswot_nb201.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import CIFAR1K, NB201_CSV, RUNS, ground_truth, machine, rank_stats, write_json  # noqa: E402


def measure(cells: list[str], seed: int, batch_size: int, data: str, common_draws: bool = False) -> dict[str, list[float]]:
    import torch

    from searchkd.data import load_images
    from searchkd.proxies import diswot
    from searchkd.seeds import teacher_seed
    from searchkd.spaces import get_space
    from searchkd.teachers import build_teacher

    space = get_space("nb201")
    batch = load_images(data).batch(batch_size, seed=seed)
    out: dict[str, list[float]] = {}
    for init in ("normal", "default"):
        cfg = diswot.with_config(init=init)
        torch.manual_seed(teacher_seed(seed))  # build and (re-)initialise, as Evaluator and Scorer do
        teacher = build_teacher("nb201-best", num_classes=10)
        torch.manual_seed(teacher_seed(seed))
        state = diswot.prepare(teacher, batch, cfg)
        for arch in cells:
            torch.manual_seed(seed)
            net = space.build(arch, 10)
            if common_draws:  # the N(0,1) re-init starts from the same RNG state for every cell, as Scorer runs it
                torch.manual_seed(seed)
            parts = diswot.score(net, batch, state)
            for k, v in parts.items():
                out.setdefault(f"{k}[{init}]", []).append(v)
    return out


def cache_speedup(cells: list[str], batch_size: int, data: str) -> dict[str, float]:
    """Seconds per cell of `diswot` with the teacher prepared once vs once per student (the reference's way)."""
    import torch

    from searchkd.data import load_images
    from searchkd.proxies import Scorer
    from searchkd.spaces import get_space
    from searchkd.teachers import build_teacher

    space = get_space("nb201")
    batch = load_images(data).batch(batch_size, seed=0)
    teacher = build_teacher("nb201-best", num_classes=10)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    cached = Scorer(["diswot"], batch, teacher=teacher)
    per_cell = []
    for a in cells:
        t1 = time.perf_counter()
        cached.score_arch(space, a)
        per_cell.append(time.perf_counter() - t1)
    t_cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    for a in cells:
        Scorer(["diswot"], batch, teacher=teacher).score_arch(space, a)
    t_uncached = time.perf_counter() - t0
    return {"cells": len(cells), "seconds_per_cell_cached": t_cached / len(cells),
            "seconds_per_cell_uncached": t_uncached / len(cells), "speedup": t_uncached / t_cached,
            "median_ms_per_cell_cached": 1000 * statistics.median(per_cell),
            "projected_hours_all_15625_cached": t_cached / len(cells) * 15625 / 3600}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--data", default=f"npz:{CIFAR1K}")
    ap.add_argument("--ground-truth", default=str(NB201_CSV))
    ap.add_argument("--timing-cells", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--common-draws", action="store_true",
                    help="re-seed before DisWOT's N(0,1) re-init, so every cell draws the same numbers (as the "
                         "engine's Scorer does); without it the re-init continues the build's RNG stream")
    ap.add_argument("--out", default=str(RUNS / "diswot_nb201.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    gt = ground_truth(Path(args.ground_truth))
    archs = sorted(gt)
    rng = np.random.default_rng(2023)
    cells = [archs[i] for i in rng.choice(len(archs), size=args.cells, replace=False)]
    acc = np.array([gt[a] for a in cells])
    from searchkd.spaces import get_space

    params = np.array([get_space("nb201").cost(a)["params"] for a in cells])
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed: dict[str, list[dict[str, float]]] = {}
    halves = {"selection": slice(0, len(cells) // 2), "report": slice(len(cells) // 2, None)}
    per_half: dict[str, dict[str, list[dict[str, float]]]] = {h: {} for h in halves}
    raw = {}
    for seed in seeds:
        t0 = time.perf_counter()
        terms = measure(cells, seed, args.batch_size, args.data, args.common_draws)
        print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
        raw[seed] = terms
        for init in ("normal", "default"):
            sem, rel = np.array(terms[f"semantic[{init}]"]), np.array(terms[f"relation[{init}]"])
            variants = {
                f"semantic[{init}]": sem,
                f"relation[{init}]": rel,
                # both terms as means of squared differences: `diswot` is this with init=default
                f"semantic+relation[{init}]": sem + rel,
                # the reference's scaling: semantic divided by K·C, not K·C² (C = 64 here);
                # with init=normal this is `diswot_reference`
                f"semantic*C+relation[{init}]": 64 * sem + rel,
                # each term rescaled to unit spread over these cells, then summed (an oracle weighting)
                f"semantic+relation standardised[{init}]": sem / sem.std() + rel / rel.std(),
            }
            for name, v in variants.items():
                per_seed.setdefault(name, []).append(rank_stats(v, acc))
                for h, sl in halves.items():
                    per_half[h].setdefault(name, []).append(rank_stats(v[sl], acc[sl]))
    per_seed["params"] = [rank_stats(params, acc)]
    for h, sl in halves.items():
        per_half[h]["params"] = [rank_stats(params[sl], acc[sl])]

    def mean_tau(rows: list[dict[str, float]]) -> float:
        return float(np.mean([r["kendall"] for r in rows]))

    # a variant a user could ship (not the oracle standardisation, which needs the cells' spread)
    candidates = [n for n in per_seed if n != "params" and "standardised" not in n]
    chosen = max(candidates, key=lambda n: mean_tau(per_half["selection"][n]))
    split = {"chosen_on_selection_half": chosen,
             "selection_tau": mean_tau(per_half["selection"][chosen]),
             "report_tau": mean_tau(per_half["report"][chosen]),
             "report_rho": float(np.mean([r["spearman"] for r in per_half["report"][chosen]])),
             "report_params_tau": mean_tau(per_half["report"]["params"]),
             "cells_per_half": len(cells) // 2}
    summary = {
        name: {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))}
               for k in ("kendall", "spearman")}
        for name, rows in per_seed.items()
    }
    timing = cache_speedup(cells[: args.timing_cells], args.batch_size, args.data)
    for name, s in summary.items():
        print(f"{name:<42} tau {s['kendall']['mean']:.3f}±{s['kendall']['std']:.3f}  "
              f"rho {s['spearman']['mean']:.3f}±{s['spearman']['std']:.3f}")
    print(timing)
    print(f"chosen on the selection half: {chosen}; on the report half tau {split['report_tau']:.3f} "
          f"(params {split['report_params_tau']:.3f})")
    write_json(Path(args.out), {"benchmark": "diswot_nb201", "cells": args.cells, "seeds": seeds,
                                "batch_size": args.batch_size, "data": args.data, "teacher": "nb201-best",
                                "seed_streams": "teacher from searchkd.seeds.teacher_seed(seed), students from seed",
                                "common_draws": args.common_draws,
                                "summary": summary, "variant_selection": split, "timing": timing, "machine": machine()})


if __name__ == "__main__":
    main()
