"""Kill a running ``searchkd search`` with SIGKILL at random moments, resume it, and compare
with an uninterrupted run of the same seed and config.

The two ``trials.jsonl`` are compared line by line on ``i``, ``arch``, ``scores`` (exactly),
``params`` and ``flops`` (not ``seconds``); the JSON says which fields matched on every line
and where the first difference is (:func:`compare_logs`).

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
sys.path.insert(0, str(ROOT))
from searchkd.io import dumps, write_json  # noqa: E402

#: the fields of a trial record that a resumed search must reproduce (all but ``seconds``)
COMPARED = ("i", "arch", "scores", "params", "flops")


def compare_logs(reference: Path, resumed: Path) -> dict:
    """Line-by-line comparison of two ``trials.jsonl`` on :data:`COMPARED`.

    Values are compared as their JSON text, so scores must be equal to the last bit (and two
    nulls, or two NaNs, are equal). Returns the line counts, per field whether it matched on
    every common line, the number of lines that matched entirely, the first differing line
    (``None`` when none), and ``same``: equal counts and every line matched.
    """
    a, b = ([json.loads(x) for x in p.read_text().splitlines() if x.strip()] for p in (reference, resumed))
    fields = {f: True for f in COMPARED}
    matched, first = 0, None
    for n, (x, y) in enumerate(zip(a, b)):
        bad = [f for f in COMPARED if json.dumps(x.get(f), sort_keys=True) != json.dumps(y.get(f), sort_keys=True)]
        for f in bad:
            fields[f] = False
        if bad and first is None:
            first = {"line": n + 1, "fields": bad, "reference": {f: x.get(f) for f in bad},
                     "resumed": {f: y.get(f) for f in bad}}
        matched += not bad
    return {"lines_reference": len(a), "lines_resumed": len(b), "lines_matched": matched,
            "fields_matched": fields, "first_difference": first,
            "same": len(a) == len(b) and matched == len(a)}


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
    ap.add_argument("--out", default=str(ROOT / "runs" / "resume_kill.json"))
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
        log = compare_logs(tmp / "ref" / "trials.jsonl", tmp / "killed" / "trials.jsonl")
        out = {"proxy": args.proxy, "budget": args.budget, "seed": args.seed, "uninterrupted_seconds": full_s,
               "kills": kills, "best_uninterrupted": ref_best, "best_resumed": res["best"]["arch"],
               "same_best": res["best"]["arch"] == ref_best, "trials_resumed": res["trials"],
               "same_trials_log": log["same"], "trials_log": log}
        write_json(args.out, out)
        print(dumps(out, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
