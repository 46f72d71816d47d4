"""Kill a running ``searchkd search`` with SIGKILL at random moments, resume it, and compare
with an uninterrupted run of the same seed and config.

    python benchmarks/resume_kill.py --proxy params --budget 300 --kills 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def search(out: Path, args: argparse.Namespace, resume: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "searchkd.cli", "search", "--space", "nb201", "--proxy", args.proxy,
           "--strategy", "evolution", "--budget", str(args.budget), "--seed", str(args.seed), "--data", args.data,
           "--out", str(out), "--quiet"] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxy", default="params")
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--data", default="embedded")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "resume_kill.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="searchkd-resume-"))
    try:
        t0 = time.perf_counter()
        ref = search(tmp / "ref", args, resume=False)
        ref.wait()
        full_s = time.perf_counter() - t0
        ref_best = json.loads((tmp / "ref" / "result.json").read_text())["best"]["arch"]
        kills = []
        p = search(tmp / "killed", args, resume=False)
        for _ in range(args.kills):
            delay = float(rng.uniform(0.2, 0.9) * full_s)
            try:
                p.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                log = tmp / "killed" / "trials.jsonl"
                kills.append({"after_s": delay, "lines_logged": len(log.read_text().splitlines()) if log.exists() else 0})
            p = search(tmp / "killed", args, resume=True)
        p.wait()
        if p.returncode != 0:
            sys.exit(f"resume failed: {p.stderr.read() if p.stderr else ''}")
        res = json.loads((tmp / "killed" / "result.json").read_text())
        out = {"proxy": args.proxy, "budget": args.budget, "seed": args.seed, "uninterrupted_seconds": full_s,
               "kills": kills, "best_uninterrupted": ref_best, "best_resumed": res["best"]["arch"],
               "same_best": res["best"]["arch"] == ref_best, "trials_resumed": res["trials"],
               "same_trials_log": (tmp / "ref" / "trials.jsonl").read_text().splitlines().__len__()
               == (tmp / "killed" / "trials.jsonl").read_text().splitlines().__len__()}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
