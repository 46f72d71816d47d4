"""Search quality on NAS-Bench-201: regularized evolution vs random search, per proxy.

For each proxy setting (each ``--proxies`` name alone, plus their mean rank with
``--combine``) and each seed, run regularized evolution and random search with the same
budget of proxy evaluations, then look up the found cell's ground-truth accuracy. Writes
mean ± std to ``benchmarks/out/search_quality.json``.

Proxy scores are cached across seeds and settings in ``benchmarks/out/cache/scores.jsonl``:
one line per (score key, proxy, arch), so 5 seeds × several proxies share every evaluation
(the proxies are seeded by ``--proxy-seed``, fixed, not by the search seed). The score key
is everything that decides a score: the searchkd and torch versions, the space, teacher,
data, batch size, proxy seed and device (:func:`score_key`). The cache is append-only and
fsynced, so a killed run keeps what it scored; each search also resumes from its own
directory, ``out/search_quality/<digest of the score key>/<strategy>_<proxies>_seed<seed>``,
so a new version or setting never resumes an old search. The JSON records the score key,
the budget and, per search, how many distinct archs it evaluated (``trials``), so an
equal-budget comparison can be checked (``equal_budget``).

Full run (expensive: proxies take ≈ 0.1–1 s per cell on a CPU)::

    PYTHONPATH=. python benchmarks/search_quality.py --proxies diswot,nwot,synflow --combine \\
        --budget 1000 --seeds 5

Smoke run::

    PYTHONPATH=. python benchmarks/search_quality.py --proxies params,flops --budget 200 --seeds 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import searchkd
from searchkd.bench import read_ground_truth
from searchkd.evaluate import EvalConfig, Evaluator
from searchkd.io import append_jsonl, dumps, write_json
from searchkd.orchestrate import run_search
from searchkd.types import SearchConfig

HERE = Path(__file__).resolve().parent


def score_key(config: EvalConfig) -> dict[str, Any]:
    """What decides a proxy score, besides the proxy: versions and evaluation settings."""
    import torch

    d = config.to_dict()
    d.pop("proxies")
    return {"searchkd": searchkd.__version__, "torch": torch.__version__, **d}


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


class CachedEvaluator:
    """``evaluate(archs) -> records`` backed by a JSONL score cache shared across searches.

    A cache line is ``{"key", "proxy", "arch", "score", "params", "flops", "seconds"}``; ``key``
    is :func:`score_key` (no proxy list), so a proxy's score is reused by every search that
    uses that proxy, alone or combined. A non-finite score is written null and read as -inf.
    """

    def __init__(self, config: EvalConfig, path: str | os.PathLike[str]) -> None:
        self.config = config
        self.path = Path(path)
        self.key = dumps(score_key(config), sort_keys=True)
        self.scores: dict[tuple[str, str], float] = {}
        self.costs: dict[str, tuple[float, float, float]] = {}
        self.hits = self.misses = 0
        self._evaluators: dict[tuple[str, ...], Evaluator] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a torn last line
                    continue
                if r.get("key") == self.key:
                    self.scores[(r["proxy"], r["arch"])] = -math.inf if r["score"] is None else float(r["score"])
                    self.costs[r["arch"]] = (r["params"], r["flops"], r["seconds"])

    def __call__(self, archs: Sequence[str]) -> list[dict[str, Any]]:
        proxies = self.config.proxies
        groups: dict[tuple[str, ...], list[str]] = {}
        for a in archs:
            missing = tuple(p for p in proxies if (p, a) not in self.scores)
            self.hits += len(proxies) - len(missing)
            self.misses += len(missing)
            if missing:
                groups.setdefault(missing, []).append(a)
        for missing, todo in groups.items():
            if missing not in self._evaluators:  # built once: data, teacher and proxy state
                self._evaluators[missing] = Evaluator(replace(self.config, proxies=missing))
            recs = self._evaluators[missing](todo)
            lines = []
            for r in recs:
                self.costs[r["arch"]] = (r["params"], r["flops"], r["seconds"] / len(missing))
                for p in missing:
                    self.scores[(p, r["arch"])] = r["scores"][p]
                    lines.append({"key": self.key, "proxy": p, "arch": r["arch"], "score": r["scores"][p],
                                  "params": r["params"], "flops": r["flops"], "seconds": r["seconds"] / len(missing)})
            append_jsonl(self.path, lines)
        out = []
        for a in archs:
            params, flops, sec = self.costs[a]
            out.append({"arch": a, "scores": {p: self.scores[(p, a)] for p in proxies}, "params": params,
                        "flops": flops, "seconds": sec * len(proxies)})
        return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proxies", default="diswot,nwot,synflow")
    ap.add_argument("--combine", action="store_true", help="also search the mean rank of all --proxies")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--data", default="npz:../shared/data/images/cifar10_test_1000.npz")
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--proxy-seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ground-truth", default="../shared/data/nb201/nb201_cifar10.csv")
    ap.add_argument("--column", default="cifar10_test_acc")
    ap.add_argument("--dataset", default=None,
                    help="with --ground-truth nb201:FILE.pth: cifar10, cifar10-valid, cifar100 or ImageNet16-120")
    ap.add_argument("--strategies", default="evolution,random")
    ap.add_argument("--only", default=None,
                    help="run only these settings, ';'-separated (e.g. 'synflow;diswot,nwot,synflow'): to split a run "
                         "over processes that share the cache")
    ap.add_argument("--seed-list", default=None, help="these seeds (comma-separated) instead of range(--seeds)")
    ap.add_argument("--out", default=str(HERE.parent / "runs" / "search_quality.json"))
    ap.add_argument("--cache", default=str(HERE / "out" / "cache" / "scores.jsonl"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    proxies = [p for p in args.proxies.split(",") if p]
    settings = [[p] for p in proxies] + ([proxies] if args.combine and len(proxies) > 1 else [])
    if args.only:
        settings = [s.split(",") for s in args.only.split(";")]
    seeds = [int(x) for x in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    gt = read_ground_truth(args.ground_truth, args.column, args.dataset)
    runs_dir = Path(args.out).with_suffix("")
    results: dict[str, Any] = {}
    cache_stats = {"hits": 0, "misses": 0}
    key = None
    from searchkd.orchestrate.local import eval_config

    for setting in settings:
        proxy = ",".join(setting)
        for strategy in args.strategies.split(","):
            accs, archs, trials = [], [], []
            for seed in seeds:
                cfg = SearchConfig(space="nb201", proxy=proxy, strategy=strategy, budget=args.budget, seed=seed,
                                   teacher=args.teacher, data=args.data, device=args.device,
                                   proxy_seed=args.proxy_seed)
                ev = CachedEvaluator(eval_config(cfg), args.cache)
                key = score_key(ev.config)
                name = f"{strategy}_{proxy.replace(',', '+')}_seed{seed}"
                r = run_search(cfg, runs_dir / digest(key) / name, resume=True, evaluator=lambda ev=ev: ev, plots=False)
                cache_stats["hits"] += ev.hits
                cache_stats["misses"] += ev.misses
                archs.append(r.best.arch)
                accs.append(gt[r.best.arch])
                trials.append(r.trials)
                print(f"{name}: {r.best.arch} {args.column}={gt[r.best.arch]:.2f} ({r.trials} archs)", file=sys.stderr)
            results[f"{strategy}/{proxy}"] = {
                "strategy": strategy, "proxy": proxy, "mean": statistics.fmean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "accs": accs, "best_archs": archs,
                "budget": args.budget, "trials": trials, "equal_budget": all(t == args.budget for t in trials)}
    out = {"space": "nb201", "budget": args.budget, "seeds": len(seeds), "seed_list": seeds, "data": args.data,
           "teacher": args.teacher, "proxy_seed": args.proxy_seed, "column": args.column,
           "searchkd_version": searchkd.__version__, "score_key": key, "score_key_digest": digest(key),
           "equal_budget": all(v["equal_budget"] for v in results.values()),
           "oracle": max(gt.values()), "results": results, "cache": cache_stats,
           "seconds": time.perf_counter() - t0}
    write_json(args.out, out)
    for k, v in results.items():
        print(f"{k:40s} {v['mean']:.2f} ± {v['std']:.2f}")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
