"""Fidelity of searchkd's zero-cost proxies against the published NAS-Bench-201 scores.

On the 724 NAS-Bench-201 cells of NAS-Bench-Suite-Zero (``naslib_zc_cifar10.csv``), with one
64-image batch of real CIFAR-10 test images and the NB201 network of each cell (10 classes,
built under ``torch.manual_seed(seed)``), every proxy is scored through
:class:`searchkd.proxies.Scorer`. The JSON holds, per proxy: Spearman ρ vs the CSV's
``val_accuracy`` and vs NB201 ``cifar10_test_acc``, the same for the published column on the
same cells, ρ(ours, published), the median milliseconds per cell, and the per-cell scores
(which make the run resumable: rerunning skips the cells already in the output).

A non-finite score (ours or published) ranks worst, tied with the other non-finite ones,
as everywhere in searchkd (:func:`searchkd.bench.rank_stats`); in the JSON it is null.

    PYTHONPATH=. python benchmarks/zc_fidelity.py --limit 150      # a quick look
    PYTHONPATH=. python benchmarks/zc_fidelity.py                   # all 724 cells

Paths default to ``../shared/data/...`` relative to the repository root.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import ROOT, SHARED as DATA, ground_truth, read_csv  # noqa: E402
from searchkd.bench import rank_stats, rank_worst  # noqa: E402
from searchkd.io import write_json  # noqa: E402

#: our proxy → the published column of naslib_zc_cifar10.csv
PUBLISHED = {"synflow": "synflow", "nwot": "nwot", "jacob_cov": "jacov", "snip": "snip", "grad_norm": "grad_norm",
             "grasp": "grasp", "fisher": "fisher", "params": "params", "flops": "flops", "zen": None, "meco": None,
             "zico": None}
#: Spearman ρ of the published columns vs val_accuracy on all 724 cells (shared/data/README.md)
PUBLISHED_RHO_724 = {"synflow": .736, "nwot": .787, "jacob_cov": .766, "snip": .608, "grad_norm": .607,
                     "grasp": .538, "fisher": .509, "params": .738, "flops": .711}
#: what the proxy's paper reports on NB201 CIFAR-10 (ρ vs test accuracy; NAS-Bench-Suite-Zero for zen)
PAPER_RHO = {"meco": .89, "zen": .35, "zico": .80}
TOLERANCE = 0.05


def spearman(scores, truth) -> float:
    """Spearman ρ of proxy scores against ``truth`` (a non-finite score ranks worst)."""
    return rank_stats(scores, truth)["spearman"]


def to_float(s: str) -> float:
    try:
        return float(s)
    except (TypeError, ValueError):
        return math.nan


def from_json(x) -> float:
    """A stored score: null (and "-inf"/"nan", as older versions wrote them) are non-finite."""
    return -math.inf if x is None else float(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default=str(DATA / "nb201" / "naslib_zc_cifar10.csv"))
    ap.add_argument("--nb201", default=str(DATA / "nb201" / "nb201_cifar10.csv"))
    ap.add_argument("--images", default=str(DATA / "images" / "cifar10_test_1000.npz"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "zc_fidelity.json"))
    ap.add_argument("--proxies", default=",".join(PUBLISHED), help="comma-separated proxy names")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N cells of a seeded shuffle (0: all)")
    ap.add_argument("--seed", type=int, default=0, help="init seed of every network and proxy")
    ap.add_argument("--batch-seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--save-every", type=int, default=10, help="write the JSON every N cells")
    ap.add_argument("--fresh", action="store_true", help="ignore the cells already in --out")
    ap.add_argument("--redo", default="", help="comma-separated proxies whose stored scores are recomputed")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)

    for p in (args.cells, args.nb201, args.images):
        if not Path(p).is_file():
            print(f"reference data {p} is absent (the project's ../shared/data folder)", file=sys.stderr)
            return 2
    proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    rows = read_csv(Path(args.cells))
    order = np.random.default_rng(0).permutation(len(rows))
    if args.limit:
        order = order[: args.limit]
    rows = [rows[i] for i in order]
    test_acc = ground_truth(Path(args.nb201), "cifar10_test_acc")

    config = {"cells_csv": os.path.relpath(args.cells, ROOT), "images": os.path.relpath(args.images, ROOT),
              "batch_size": args.batch_size, "batch_seed": args.batch_seed, "seed": args.seed,
              "threads": args.threads, "torch": torch.__version__}
    out_path = Path(args.out)
    done: dict[str, dict] = {}
    if out_path.is_file() and not args.fresh:
        old = json.loads(out_path.read_text())
        if old.get("config", {}).get("seed") == args.seed and old.get("config", {}).get("batch_seed") == args.batch_seed:
            done = old.get("cells", {})
    for p in filter(None, args.redo.split(",")):
        for rec in done.values():
            rec["scores"].pop(p, None)
            rec["ms"].pop(p, None)

    def write() -> None:
        result = summarise(rows, done, proxies, test_acc)
        write_json(out_path, {"config": config, **result, "cells": done}, indent=1)

    jobs = []
    for row in rows:
        rec = done.setdefault(row["arch"], {"scores": {}, "ms": {}})
        todo = [p for p in proxies if p not in rec["scores"]]
        if todo:
            jobs.append((row["arch"], todo))
    init = (args.images, args.batch_size, args.batch_seed, args.seed, args.threads, proxies)
    t_start = time.time()
    if args.jobs > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(args.jobs, initializer=_init_worker, initargs=init)
        results = pool.imap_unordered(_score_cell, jobs)
    else:
        _init_worker(*init)
        results = map(_score_cell, jobs)
    for n_new, (arch, scores, ms) in enumerate(results, start=1):
        done[arch]["scores"].update(scores)
        done[arch]["ms"].update(ms)
        if n_new % args.save_every == 0:
            write()
            print(f"{n_new}/{len(jobs)} cells, {(time.time() - t_start) / n_new:.2f} s/cell", flush=True)
    if args.jobs > 1:
        pool.close()
        pool.join()
    write()
    table = json.loads(out_path.read_text())["table"]
    print(f"{'proxy':10s} {'cells':>5s} {'ours':>6s} {'publ.':>6s} {'ρ(o,p)':>7s} {'ms':>8s}")
    for p, t in table.items():
        print(f"{p:10s} {t['n_cells']:5d} {fmt(t['rho_val'])} {fmt(t.get('published_rho_val'))} "
              f"{fmt(t.get('rho_vs_published'))} {t['median_ms']:8.1f}")
    return 0


_WORKER: dict = {}


def _init_worker(images: str, batch_size: int, batch_seed: int, seed: int, threads: int, proxies: list[str]) -> None:
    import torch

    torch.set_num_threads(threads)
    from searchkd.data import load_images
    from searchkd.proxies import Scorer
    from searchkd.spaces import get_space

    batch = load_images(f"npz:{images}").batch(batch_size, seed=batch_seed)
    _WORKER.update(space=get_space("nb201"), seed=seed,
                   scorers={p: Scorer([p], batch, num_classes=10, seed=seed) for p in proxies})


def _score_cell(job: tuple[str, list[str]]) -> tuple[str, dict, dict]:
    """Score one cell with the given proxies: (arch, scores, milliseconds)."""
    import torch

    arch, todo = job
    with torch.random.fork_rng():
        torch.manual_seed(_WORKER["seed"])
        net = _WORKER["space"].build(arch, 10)
    scores, ms = {}, {}
    for p in todo:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = _WORKER["scorers"][p].score_net(net)[p]
        ms[p] = round(1000 * (time.perf_counter() - t0), 2)
        scores[p] = value
    return arch, scores, ms


def fmt(x) -> str:
    return f"{x:6.3f}" if isinstance(x, (int, float)) and math.isfinite(x) else f"{'-':>6s}"


def summarise(rows: list[dict], done: dict, proxies: list[str], test_acc: dict[str, float]) -> dict:
    """The fidelity table: per proxy, over the cells of ``rows`` that ``done`` holds a score of
    that proxy for (so a run restricted with ``--proxies`` keeps the others' rows)."""
    names = list(proxies) + sorted({p for r in rows for p in done.get(r["arch"], {}).get("scores", {})} - set(proxies))
    table = {}
    for p in names:
        scored = [r for r in rows if p in done.get(r["arch"], {}).get("scores", {})]
        if not scored:
            continue
        val = [to_float(r["val_accuracy"]) for r in scored]
        test = [test_acc.get(r["arch"], math.nan) for r in scored]
        ours = [from_json(done[r["arch"]]["scores"][p]) for r in scored]
        ms = [done[r["arch"]]["ms"][p] for r in scored]
        t = {"n_cells": len(scored), "rho_val": spearman(ours, val), "rho_test": spearman(ours, test),
             "median_ms": statistics.median(ms), "nonfinite": int(sum(not math.isfinite(v) for v in ours))}
        col = PUBLISHED.get(p)
        if col:
            pub = [to_float(r[col]) for r in scored]
            t.update({"published_column": col, "published_rho_val": spearman(pub, val),
                      "published_rho_test": spearman(pub, test),
                      "rho_vs_published": spearman(ours, rank_worst(pub)),
                      "published_rho_val_724": PUBLISHED_RHO_724.get(p)})
            t["within_tolerance"] = bool(abs(t["rho_val"] - t["published_rho_val"]) <= TOLERANCE)
        if p in PAPER_RHO:
            t["paper_rho"] = PAPER_RHO[p]
        table[p] = t
    n = max((t["n_cells"] for t in table.values()), default=0)
    return {"n_cells": n, "tolerance": TOLERANCE, "table": table}


if __name__ == "__main__":
    sys.exit(main())
