"""Threads: the same NB201 search at 1 torch thread, 2 threads, and 2 Ray workers × 1 thread,
on an idle machine and under load.

Each configuration runs ``searchkd search --space nb201 --strategy random`` as a fresh process,
so it pays what a user pays (imports, data, the thread setting of ``--threads`` / a Ray
trial's CPUs). Random search with one seed draws the same cells in every configuration, so the
best arch must agree (checked). "Under load" starts ``--load`` busy processes (one-thread
matrix products, what another torch job does to the cores) for the duration of each run.
Configurations are interleaved within each repetition, so slow drift of a shared machine
hits them alike. Writes ``benchmarks/out/threads.json``.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/threads.py --budget 1000 --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, write_json  # noqa: E402

CONFIGS = {
    "1 thread": ["--threads", "1"],
    "2 threads": ["--threads", "2"],
    "2 workers x 1 thread": ["--runner", "ray", "--cpus-per-trial", "1", "--threads", "1"],
}

LOAD = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a = (a @ a).tanh()\n"


def run_one(flags: list[str], args, out: Path) -> dict:
    """One search as its own process; a run past ``--max-seconds`` is stopped and recorded as
    censored (``seconds`` null, ``at_least_seconds``), so one starved configuration cannot
    hold the benchmark for an hour."""
    cmd = [sys.executable, "-m", "searchkd", "search", "--space", "nb201", "--proxy", args.proxy, "--strategy", "random",
           "--budget", str(args.budget), "--seed", str(args.seed), "--data", args.data, "--out", str(out), "--quiet",
           *flags]
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    env.pop("OMP_NUM_THREADS", None)  # the flag alone decides
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=args.max_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the search and the private Ray it started (same session)
        proc.communicate()
        return {"seconds": None, "at_least_seconds": args.max_seconds, "best": None, "trials": None}
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"threads.py: {' '.join(cmd)} failed ({proc.returncode}): {stderr.strip()[-400:]}")
    res = json.loads((out / "result.json").read_text())
    return {"seconds": seconds, "best": res["best"]["arch"], "trials": res.get("trials")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proxy", default="synflow", help="a cheap torch proxy (default synflow)")
    ap.add_argument("--budget", type=int, default=1000, help="cells per search (15625 = the whole space)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="npz:../shared/data/images/cifar10_test_1000.npz")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2,
                    help="busy one-thread processes in the 'under load' condition (default: one per core)")
    ap.add_argument("--conditions", default="idle,load")
    ap.add_argument("--max-seconds", type=float, default=600, help="stop a run after this long (recorded as censored)")
    ap.add_argument("--out", default=str(RUNS / "threads.json"))
    args = ap.parse_args(argv)

    conditions = [c for c in args.conditions.split(",") if c]
    if not set(conditions) <= {"idle", "load"}:
        raise SystemExit("threads.py: --conditions takes idle and/or load")
    runs: dict[str, dict[str, list[dict]]] = {c: {k: [] for k in CONFIGS} for c in conditions}
    with tempfile.TemporaryDirectory() as tmp:
        for cond in conditions:
            for rep in range(args.reps):
                for name, flags in CONFIGS.items():
                    load = [subprocess.Popen([sys.executable, "-c", LOAD], env=dict(os.environ, OMP_NUM_THREADS="1"))
                            for _ in range(args.load if cond == "load" else 0)]
                    try:
                        time.sleep(1.0 if load else 0.0)
                        r = run_one(flags, args, Path(tmp) / f"{cond}-{rep}-{name.replace(' ', '_')}")
                    finally:
                        for p in load:
                            p.kill()
                            p.wait()
                    runs[cond][name].append(r)
                    took = f"{r['seconds']:7.1f} s" if r["seconds"] is not None else f">{r['at_least_seconds']:.0f} s (stopped)"
                    print(f"{cond:4s} rep {rep} {name:22s} {took}  best {r['best']}", flush=True)
    def fastest(rs: list[dict]) -> tuple[float, bool]:
        done = [r["seconds"] for r in rs if r["seconds"] is not None]
        return (min(done), False) if done else (max(r["at_least_seconds"] for r in rs), True)

    summary = {}
    for cond, per in runs.items():
        base, _ = fastest(per["1 thread"])
        summary[cond] = {}
        for name, rs in per.items():
            sec, censored = fastest(rs)
            # censored: a lower bound (the run was stopped at --max-seconds)
            summary[cond][name] = {"seconds_min": sec, "censored": censored, "seconds_all": [r["seconds"] for r in rs],
                                   "ratio_to_1_thread": sec / base}
    bests = {r["best"] for per in runs.values() for rs in per.values() for r in rs if r["best"] is not None}
    out = {"command": "python benchmarks/threads.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "proxy": args.proxy, "budget": args.budget, "seed": args.seed, "data": args.data, "reps": args.reps,
           "load_processes": args.load, "configs": {k: " ".join(v) for k, v in CONFIGS.items()},
           "summary": summary, "runs": runs, "same_best": len(bests) == 1, "best": sorted(bests),
           "machine": machine()}
    write_json(Path(args.out), out)
    for cond, per in summary.items():
        print(cond + ": " + ", ".join(f"{k} {'>' if v['censored'] else ''}{v['seconds_min']:.1f} s "
                                      f"(x{'>' if v['censored'] else ''}{v['ratio_to_1_thread']:.2f})" for k, v in per.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
