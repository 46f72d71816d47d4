"""Training-free scores against the SuperLM's ranking over a whole BERT sub-space.

Reads a finished ``--strategy autodistil`` search that scored every subnet (``--budget 256``:
``trials.jsonl`` holds each arch's ``superlm`` score, the negated held-out relation loss inside
the trained SuperLM), scores the same archs with the training-free text proxies
(``diswot_relation``, ``capacity_gap``, ``params``, ``flops``) on the search's own teacher, data
and seed, and reports Kendall τ / Spearman ρ of each against the SuperLM's scores.

    PYTHONPATH=. python benchmarks/bert_training_free.py --result runs/bert

Writes ``--out`` (default ``runs/bert_training_free.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, rank_stats, write_json  # noqa: E402

PROXIES = ("diswot_relation", "capacity_gap", "params", "flops")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--result", required=True, help="a finished autodistil search directory")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RUNS / "bert_training_free.json"))
    args = ap.parse_args(argv)

    import torch

    from searchkd import api
    from searchkd.types import SearchResult

    torch.set_num_threads(args.threads)
    res = SearchResult.from_json(args.result)
    c = res.config
    trials = [json.loads(x) for x in (Path(args.result) / "trials.jsonl").read_text().splitlines() if x.strip()]
    archs = [t["arch"] for t in trials]
    superlm = [t["scores"]["superlm"] for t in trials]
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    rows = api.score_archs(c["space"], archs, list(PROXIES), teacher=c["teacher"], data=c["data"],
                           batch_size=c["batch_size"], seed=c["seed"] if c.get("proxy_seed") is None else c["proxy_seed"],
                           device="cpu", progress=False, timings=timings)
    table = {p: rank_stats([r[p] for r in rows], superlm) for p in PROXIES}
    for p, s in table.items():
        print(f"{p:<16} tau {s['kendall']:+.3f}  rho {s['spearman']:+.3f}  (vs superlm, n={len(archs)})")
    write_json(Path(args.out), {
        "command": "python benchmarks/bert_training_free.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "space": c["space"], "teacher": c["teacher"], "data": c["data"], "n": len(archs),
        "supernet_steps": c.get("supernet_steps"), "vs_superlm": table,
        "seconds_per_arch": {p: timings.get(p, 0.0) / max(1, len(archs)) for p in PROXIES},
        "seconds": time.perf_counter() - t0, "machine": machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
