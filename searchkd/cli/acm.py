"""``searchkd acm``: argument parsing only; the work is :func:`searchkd.supernets.acm.run.run_acm`."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def _budgets(text: str) -> tuple[float, ...]:
    import math

    values = tuple(float(x) for x in text.split(",") if x.strip())
    if not all(math.isfinite(v) for v in values):
        raise ValueError(text)
    return values


_budgets.__name__ = "comma-separated list of finite numbers"


def register(sub: Any, common: Any) -> None:
    from searchkd.supernets.acm.settings import CALIBRATE_BEFORE_STAGE3, ROUTING, STAGE2_LOSS

    p = sub.add_parser("acm", help="turn a BERT model's FFN blocks into adaptive computation modules (ACM)")
    p.add_argument("--model", default="minilm-l6", help="the model to convert: minilm-l6 or hf:DIR (default minilm-l6)")
    p.add_argument("--learners", type=int, default=4, help="learners per converted module, N >= 2 (default 4)")
    p.add_argument("--convert", default="ffn",
                   help="what becomes ACMs: ffn (the FFN blocks), attention (each layer's Q, K, V and attention-output "
                        "projections) or all (both, the authors' main run) (default ffn)")
    p.add_argument("--budgets", type=_budgets, default=(0.25, 0.5, 0.75, 1.0),
                   help="target fractions of the converted modules' compute, each in (0, 1] (default 0.25,0.5,0.75,1.0)")
    p.add_argument("--data", default="embedded-text", help="embedded-text or text:PATH (default embedded-text)")
    p.add_argument("--out", required=True, help="output directory (acm.json, acm.png, model-b*/, stages/)")
    p.add_argument("--stage1-steps", type=int, default=300, help="module-wise distillation steps (default 300)")
    p.add_argument("--stage2-steps", type=int, default=200, help="gate training steps (default 200)")
    p.add_argument("--stage3-steps", type=int, default=100, help="end-to-end steps per budget (default 100)")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per end-to-end step (default 8)")
    p.add_argument("--stage2-loss", default=STAGE2_LOSS,
                   help="the gates' loss in stage 2: nll (the authors': NLL of the hard Gumbel-softmax sample) or ce "
                        f"(cross-entropy of the gate logits) (default {STAGE2_LOSS})")
    p.add_argument("--calibrate-before-stage3", action=argparse.BooleanOptionalAction, default=CALIBRATE_BEFORE_STAGE3,
                   help="shift the gates onto each budget before its stage 3 too, so that stage 3 trains under the "
                        "budget's routing (the shift goes into the gates' logits, which stage 3 samples) "
                        f"(default {'on' if CALIBRATE_BEFORE_STAGE3 else 'off'})")
    p.add_argument("--routing", default=ROUTING,
                   help="how the converted gates pick k at inference: argmax (of the logits, the calibration shift "
                        "folded in) or expected (the expected k under the gate's softmax plus one calibrated offset, "
                        f"rounded: keeps the tokens' order below the labels' budget) (default {ROUTING})")
    p.add_argument("--no-calibrate", action="store_true",
                   help="leave the budget to stage 3's penalty alone, as the paper does (default: after stage 3, "
                        "shift the gates onto the budget when they miss it by more than 0.01)")
    p.add_argument("--task", default=None,
                   help="a labelled text task, pydoc-topics or csv:PATH (columns text,label): the dense model and a "
                        "classifier are fine-tuned on it, stage 3 learns its loss and the accuracy is measured (default: "
                        "none; stage 3 then learns agreement with the dense model's hidden states)")
    p.add_argument("--task-steps", type=int, default=200, help="--task: fine-tuning steps of the dense model (default 200)")
    common(p)
    p.set_defaults(run=_cmd_acm)


def _cmd_acm(args: argparse.Namespace) -> int:
    from searchkd.supernets.acm.run import ACMRunConfig, run_acm

    config = ACMRunConfig(model=args.model, out=args.out, learners=args.learners, budgets=args.budgets,
                          data=args.data, seed=args.seed, device=args.device, stage1_steps=args.stage1_steps,
                          stage2_steps=args.stage2_steps, stage3_steps=args.stage3_steps, batch_size=args.batch_size,
                          calibrate=not args.no_calibrate, task=args.task, task_steps=args.task_steps,
                          convert=args.convert, stage2_loss=args.stage2_loss,
                          calibrate_before_stage3=args.calibrate_before_stage3,
                          routing=args.routing)
    res = run_acm(config, progress=False if args.quiet else None)
    dense = res["rows"][0]["dense_flops_per_token"] if res["rows"] else 0
    if args.convert == "ffn":
        print(f"{res['base']['name']}: {res['base']['layers']} FFN blocks -> ACMs of {args.learners} learners; "
              f"dense FFN {dense / 1e6:.3f} MFLOPs/token")
    else:
        what = "attention projections (Q/K/V/O)" if args.convert == "attention" else "FFN blocks and attention projections"
        print(f"{res['base']['name']}: {res['base']['layers']} layers' {what} -> ACMs of {args.learners} learners; "
              f"dense converted modules {dense / 1e6:.3f} MFLOPs/token")
    print(f"{'budget':>6} {'FFN frac' if args.convert == 'ffn' else 'frac':>8} {'MFLOP/tok':>9} {'distill':>9} {'hid cos':>7} {'emb cos':>7} "
          f"{'wall':>5} | {'static emb cos':>14} {'static distill':>14}")
    for r in res["rows"]:
        s = r["static"]
        print(f"{r['budget']:>6g} {r['fraction']:>8.3f} {r['flops_per_token'] / 1e6:>9.3f} {r['distill_loss']:>9.4g} "
              f"{r['hidden_cosine']:>7.4f} {r['embedding_cosine']:>7.4f} {r['wall_time_ratio']:>5.2f} | "
              f"{s['embedding_cosine']:>14.4f} {s['distill_loss']:>14.4g}")
    if res.get("task"):
        t = res["task"]
        print(f"task {t['name']}: dense accuracy {t['dense_accuracy']:.3f} (majority {t['majority_accuracy']:.3f}); "
              + ", ".join(f"b={r['budget']:g} ACM {r['task_accuracy']:.3f} static cut {r['static']['task_accuracy']:.3f}"
                          for r in res["rows"]))
    s2 = res.get("stage2") or {}
    if s2.get("label_accuracy"):
        print(f"stage 2 ({args.stage2_loss}) on {s2['held_out_tokens']} held-out tokens: gate label accuracy "
              + " ".join(f"{a:.2f}" for a in s2["label_accuracy"]))
    for r in res["rows"]:
        if r.get("bounded"):
            print(f"budget {r['budget']:g}: calibration hit its bound (fraction {r['fraction']:.3f})")
    print(f"wrote {args.out}/acm.json, {args.out}/acm.png and {len(res['rows'])} converted model(s) "
          f"(searchkd.api.load_acm) in {res['seconds']:.0f} s")
    return 0
