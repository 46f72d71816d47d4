"""Wall time of the same search via the local runner and via Ray Tune, and their ratio.

Both runs search NB201 with the same config (so they find the same best arch, which is
checked); the Ray run starts a local Ray with ``--num-cpus`` (start-up reported apart).
Writes ``benchmarks/out/ray_overhead.json``.

    PYTHONPATH=. python benchmarks/ray_overhead.py --proxy params --budget 100
"""

from __future__ import annotations

import argparse
import json

from searchkd.io import write_json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

HERE = Path(__file__).resolve().parent


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proxy", default="params")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--strategy", default="evolution")
    ap.add_argument("--ask-size", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="npz:../shared/data/images/cifar10_test_1000.npz")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count())
    ap.add_argument("--out", default=str(HERE.parent / "runs" / "ray_overhead.json"))
    args = ap.parse_args(argv)

    import ray

    from searchkd.orchestrate import run_search
    from searchkd.orchestrate.local import EvaluatorFactory, eval_config
    from searchkd.types import SearchConfig

    cfg = SearchConfig(space="nb201", proxy=args.proxy, strategy=args.strategy, budget=args.budget, seed=args.seed,
                       data=args.data, device="cpu", ask_size=args.ask_size)
    factory = EvaluatorFactory(eval_config(cfg))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        loc = run_search(cfg, Path(tmp) / "local", evaluator=factory, plots=False, progress=False)
        local_s = time.perf_counter() - t
        t = time.perf_counter()
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - t
        t = time.perf_counter()
        rr = run_search(cfg, Path(tmp) / "ray", runner="ray", evaluator=factory, plots=False, progress=False)
        ray_s = time.perf_counter() - t
        ray.shutdown()
    out = {"strategy": args.strategy, "proxy": args.proxy, "budget": args.budget, "ask_size": loc.config["ask_size"],
           "num_cpus": args.num_cpus, "trials": loc.trials, "local_seconds": local_s, "ray_init_seconds": init_s,
           "ray_seconds": ray_s, "ratio_ray_over_local": ray_s / local_s,
           "ratio_with_init": (ray_s + init_s) / local_s,
           # Ray's scheduling cost per batch (one Tune round of chunk trials); with a cheap
           # proxy such as params it is most of the difference
           "batches": -(-loc.trials // loc.config["ask_size"]),
           "overhead_per_batch_seconds": (ray_s - local_s) / -(-loc.trials // loc.config["ask_size"]),
           "same_best": loc.best.arch == rr.best.arch,
           "best": loc.best.arch}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, out)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
