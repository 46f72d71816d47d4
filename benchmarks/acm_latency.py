"""CPU latency of ``searchkd acm``'s converted models (issue 25, benchmark 3): for every budget
of a finished run, the converted model as saved against the dense encoder and against the
static cut of equal FLOPs (every FFN cut to the FFN fraction the ACM measured, units of
largest ‖w_in‖·‖w_out‖ kept; its weights do not change its speed), at batch 1 (each held-out
row at its own length: no padding) and batch 32 (rows padded to the batch's longest), one
thread, the models interleaved within every repetition (a slow moment of a shared machine hits
all of them), best of ``--reps``. ``acm_all_learners``: the same ACM with every gate forced to
k = N (all learners on every token): what the split into learners and the grouping by k cost
at full compute.

    PYTHONPATH=. python benchmarks/acm_latency.py --run runs/acm --out benchmarks/out/acm_latency.json

Writes ``--out`` (default ``runs/acm_latency.json``) and prints the table (milliseconds per
batch, and each model over dense).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import machine, write_json  # noqa: E402


def _batches(held, size: int, limit: int) -> list:
    """Up to ``limit`` rows of ``held`` in batches of ``size``, each cut to its longest real row."""
    out = []
    for i in range(0, min(len(held), limit), size):
        ids, mask = held.tensors(range(i, min(i + size, len(held), limit)))
        n = int(mask.sum(1).max())
        out.append((ids[:, :n].contiguous(), mask[:, :n].contiguous()))
    return out


def _time(model, batches) -> float:
    import torch

    t0 = time.perf_counter()
    with torch.no_grad():
        for ids, mask in batches:
            model(input_ids=ids, attention_mask=mask)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a finished `searchkd acm` output directory")
    p.add_argument("--out", default="runs/acm_latency.json")
    p.add_argument("--reps", type=int, default=5, help="repetitions, the best kept (default 5)")
    p.add_argument("--rows", type=int, default=64, help="held-out rows timed per batch size (default 64)")
    args = p.parse_args(argv)

    import torch

    from searchkd.supernets.acm.run import truncate_converted
    from searchkd.evaluate.text import _teacher, text_split
    from searchkd.io import read_json
    from searchkd.supernets.acm.model import all_learners
    from searchkd.supernets.acm.io import load_acm

    torch.set_num_threads(1)
    run = read_json(Path(args.run) / "acm.json")
    c = run["config"]
    teacher = _teacher(c["model"], None, "cpu")
    dense = teacher.model.eval()
    _, held = text_split(c["data"], teacher, c["seed"])
    sizes = {"batch_1": _batches(held, 1, args.rows), "batch_32": _batches(held, 32, args.rows)}
    rows = []
    for r in run["rows"]:
        acm, _ = load_acm(r["model_dir"])
        full = all_learners(acm)
        models = {"dense": dense, "acm": acm, "acm_all_learners": full,
                  "static_cut": truncate_converted(dense, min(1.0, r["fraction"]),
                                                   run["config"].get("convert", "ffn"))}
        row = {"budget": r["budget"], "ffn_fraction": r["fraction"]}
        for size, batches in sizes.items():
            best = {k: float("inf") for k in models}
            for m in models.values():  # warm-up
                _time(m, batches[:2])
            for _ in range(args.reps):
                for name, m in models.items():
                    best[name] = min(best[name], _time(m, batches))
            ms = {k: 1000 * v / len(batches) for k, v in best.items()}
            row[size] = {"ms_per_batch": ms, **{f"{k}_over_dense": ms[k] / ms["dense"] for k in models if k != "dense"},
                         "acm_over_static_cut": ms["acm"] / ms["static_cut"], "batches": len(batches)}
            print(f"b={r['budget']:g} frac {r['fraction']:.3f} {size:>8}: dense {ms['dense']:.2f} ms  ACM "
                  f"{ms['acm']:.2f} ({ms['acm'] / ms['dense']:.2f}x)  all learners {ms['acm_all_learners']:.2f}  "
                  f"static cut {ms['static_cut']:.2f} ({ms['static_cut'] / ms['dense']:.2f}x)", flush=True)
        rows.append(row)
    write_json(Path(args.out), {"run": str(args.run), "model": c["model"], "learners": c["learners"],
                                "rows_timed": args.rows, "reps": args.reps, "threads": 1, "rows": rows,
                                "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
