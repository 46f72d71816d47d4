"""The CPU verification run: does the search's pick distil better than random students?

Given a search's ``result.json`` (``resnet_cifar`` space), trains a ResNet-56 teacher for a
few epochs on a seeded 80 % split of the 10,000 CIFAR-10 test images, then distils the
search's 4 top students and 4 seeded random controls of the space from it (KD, T = 4,
w = 0.9), optionally with the teacher-free baseline, and writes ``verify.json`` and
``verify.png`` beside the result. Long on a CPU (hours at the defaults): run it in the
background; ``--resume`` continues a killed run from its last epoch.

    PYTHONPATH=. nohup python benchmarks/cpu_verify.py runs/search/result.json --baseline &
    PYTHONPATH=. python benchmarks/cpu_verify.py --tiny          # a minute-long smoke run
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

DEFAULT_DATA = "npz:../shared/data/images/cifar10_test_10k.npz"


def tiny_result(out: Path) -> Path:
    """A made-up resnet_cifar search scored by the ``params`` proxy, on 300 images."""
    import numpy as np

    from searchkd.data.images import load_images
    from searchkd.spaces import get_space

    out.mkdir(parents=True, exist_ok=True)
    ds = load_images(DEFAULT_DATA if Path(DEFAULT_DATA[4:]).is_file() else "embedded")
    idx = ds.indices(300, seed=0)
    np.savez(out / "tiny.npz", x=ds.x[idx], y=ds.y[idx])
    space = get_space("resnet_cifar")
    archs = ["1-1-1", "1-2-1", "2-1-1", "1-1-2", "2-2-1"]
    trials = [{"i": i, "arch": a, "scores": {"params": space.cost(a)["params"]}, **space.cost(a), "seconds": 0.0}
              for i, a in enumerate(archs)]
    (out / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    result = {"searchkd_version": "smoke", "config": {"space": "resnet_cifar", "proxy": "params", "strategy": "fixed",
              "teacher": "resnet56", "budget": len(archs), "seed": 0, "data": f"npz:{out / 'tiny.npz'}"},
              "best": {k: trials[-1][k] for k in ("arch", "scores", "params", "flops")}, "pareto": [],
              "trials": len(archs), "seconds": 0.0}
    (out / "result.json").write_text(json.dumps(result))
    return out / "result.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("result", nargs="?", help="a search's result.json (resnet_cifar space)")
    ap.add_argument("--data", default=DEFAULT_DATA, help=f"default {DEFAULT_DATA}")
    ap.add_argument("--teacher", default="resnet56")
    ap.add_argument("--teacher-weights", default=None, help="a trained teacher instead of --teacher-epochs")
    ap.add_argument("--teacher-epochs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--top", type=int, default=4)
    ap.add_argument("--controls", type=int, default=4)
    ap.add_argument("--baseline", action="store_true", help="also train every student without the teacher")
    ap.add_argument("--feature-losses", default="", help="e.g. sp,ickd")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="a made-up result on 300 images, 1 epoch each, small controls")
    args = ap.parse_args(argv)

    import torch

    from searchkd.distill import run_distill

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.tiny:
        path = tiny_result(Path(args.result or "runs/cpu_verify_tiny"))
        # Random controls of the space may be up to 9-9-9; the smoke run keeps to one of them.
        kw = dict(data=None, teacher="resnet_cifar:2-2-2", train_teacher=1, epochs=1, top=2, controls=1)
    else:
        if not args.result:
            ap.error("give a result.json (or --tiny)")
        path = Path(args.result)
        kw = dict(data=args.data, teacher=args.teacher, epochs=args.epochs, top=args.top, controls=args.controls,
                  train_teacher=None if args.teacher_weights else args.teacher_epochs)
    report = run_distill(path, baseline=args.baseline, feature_losses=args.feature_losses,
                         teacher_weights=args.teacher_weights, batch_size=args.batch_size, seed=args.seed,
                         device="cpu", resume=args.resume, progress=True, **kw)
    v = report["verdict"]
    print(f"teacher {report['teacher']['arch']}: {report['teacher']['accuracy']:.2f}% held-out")
    print(f"{'arch':<10} {'role':<12} {'score':>10} {'params':>7} {'KD %':>6} {'CE %':>6}")
    for r in report["students"]:
        score = "n/a" if r["score"] is None else f"{r['score']:.4g}"
        van = "" if r.get("vanilla_accuracy") is None else f"{r['vanilla_accuracy']:.2f}"
        print(f"{r['arch']:<10} {r['role']:<12} {score:>10} {r['params']:>7.3f} {r['kd_accuracy']:>6.2f} {van:>6}")
    c = v["proxy_vs_kd"]
    print(f"proxy vs KD accuracy: n={c['n']} tau={c['kendall_tau']} rho={c['spearman_rho']}")
    print(f"pick {v['pick']} {v['pick_kd_accuracy']:.2f}% vs controls mean {v['controls_mean_kd_accuracy']} "
          f"best {v['controls_best_kd_accuracy']}: beats mean {v['pick_beats_controls_mean']}, "
          f"beats best {v['pick_beats_controls_best']}")
    print(f"wrote {path.parent / 'verify.json'} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
