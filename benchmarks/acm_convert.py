"""What to convert (issue 25 item 2): ``searchkd acm --convert ffn|attention|all`` on the same
model, budget, seed, data and stage schedule (so the same total steps), measured as
``acm.json`` measures them on the held-out text: the compute fraction of the converted modules
(and of FFN + attention projections together, so the three rows are comparable), hidden-state and
sentence-embedding cosine with the dense model, the distillation loss, and the share of real
held-out tokens at each k (over every ACM; and for ``all`` split into FFN blocks and
projections).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/acm_convert.py --out benchmarks/out/acm_convert.json

Each conversion runs ``searchkd acm`` into ``RUNS/acm-convert-{convert}`` (a rerun reuses it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--converts", default="ffn,attention,all")
    p.add_argument("--stage1-steps", type=int, default=40)
    p.add_argument("--stage2-steps", type=int, default=20)
    p.add_argument("--stage3-steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--stage2-loss", default=None, help="as searchkd acm's (default: its default)")
    p.add_argument("--routing", default=None, help="as searchkd acm's (default: its default)")
    p.add_argument("--runs", default=str(RUNS), help="where the runs go (default: %(default)s)")
    p.add_argument("--out", default=str(RUNS / "acm_convert.json"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from searchkd.supernets.acm.run import ACMRunConfig, run_acm

    torch.set_num_threads(args.threads)
    rows = []
    for convert in args.converts.split(","):
        c = ACMRunConfig(model=args.model, out=str(Path(args.runs) / f"acm-convert-{convert}"), budgets=(args.budget,),
                         seed=args.seed, stage1_steps=args.stage1_steps, stage2_steps=args.stage2_steps,
                         stage3_steps=args.stage3_steps, batch_size=args.batch_size, convert=convert,
                         **{k: v for k, v in (("stage2_loss", args.stage2_loss), ("routing", args.routing)) if v})
        res = run_acm(c, progress=False)
        r = res["rows"][0]
        hist = np.asarray(r["k_distribution"], dtype=float)  # ACMs × (N+1), in execution order
        per_layer = {"ffn": 1, "attention": 4, "all": 5}[convert]
        kinds = (["ffn"] if convert == "ffn" else ["query", "key", "value", "output"] + (["ffn"] if convert == "all" else []))
        share = {"all_acms": (hist.sum(0) / hist.sum()).round(4).tolist()}
        if convert == "all":
            ffn = hist[per_layer - 1::per_layer].sum(0)
            att = hist.sum(0) - ffn
            share.update(ffn=(ffn / ffn.sum()).round(4).tolist(), attention=(att / att.sum()).round(4).tolist())
        dense_ffn_att = _dense_flops(res, convert)
        row = {"convert": convert, "budget": r["budget"], "fraction": r["fraction"],
               "flops_per_token": r["flops_per_token"], "dense_converted_flops_per_token": r["dense_flops_per_token"],
               "fraction_of_ffn_plus_attention": (r["flops_per_token"] + dense_ffn_att["unconverted"]) / dense_ffn_att["both"],
               "hidden_cosine": r["hidden_cosine"], "embedding_cosine": r["embedding_cosine"],
               "distill_loss": r["distill_loss"], "k_share": share,
               "largest_share_at_one_k": max(r["max_k_share"]),
               "module_order_per_layer": kinds,
               "static": {k: r["static"][k] for k in ("fraction", "hidden_cosine", "embedding_cosine", "distill_loss")},
               "seconds": res["seconds"], "run": c.out}
        rows.append(row)
        print(f"{convert:>9}: frac {r['fraction']:.3f} (of FFN+attn {row['fraction_of_ffn_plus_attention']:.3f}) "
              f"hid cos {r['hidden_cosine']:.4f} emb cos {r['embedding_cosine']:.4f} loss {r['distill_loss']:.4g} | "
              f"k share {share['all_acms']} | static emb cos {r['static']['embedding_cosine']:.4f} "
              f"({res['seconds']:.0f} s)", flush=True)
        write_json(Path(args.out), {"model": args.model, "budget": args.budget, "seed": args.seed,
                                    "steps": {"stage1": args.stage1_steps, "stage2": args.stage2_steps,
                                              "stage3": args.stage3_steps, "batch_size": args.batch_size},
                                    "threads": args.threads, "rows": rows, "machine": machine()})
    return 0


def _dense_flops(res: dict, convert: str) -> dict[str, float]:
    """Per real token: the dense FFNs and Q/K/V/O projections together (the same counting as
    ``ACMShape.dense_flops``), and the part of it left dense by ``convert``."""
    from searchkd.teachers.text import text_teacher

    cfg = text_teacher(res["config"]["model"], None, "cpu").model.config
    h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    ffn, att = layers * 4 * h * i, layers * 4 * 2 * h * h
    return {"both": ffn + att, "unconverted": {"ffn": att, "attention": ffn, "all": 0}[convert]}


if __name__ == "__main__":
    sys.exit(main())
