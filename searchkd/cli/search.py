"""``searchkd search``, ``searchkd distill`` and ``searchkd sweep``: argument parsing only."""

from __future__ import annotations

import argparse
from typing import Any

from searchkd.cli.common import csv_list as _csv, resolve_teacher_arg
from searchkd.cli.common import warning_lines as _warning_lines
from searchkd.errors import SearchKDError

__all__ = ["register"]


#: the darts/sd-darts options a flag sets (SearchConfig.options; see searchkd.strategies.darts.DartsOptions)
_DARTS_FLAGS = (
    ("--supernet-width", int, "supernet channels C (default 16 on a GPU, 8 on a CPU)"),
    ("--supernet-cells", int, "supernet cells per stage N (default 5 on a GPU, 1 on a CPU)"),
    ("--images", int, "use at most this many images (a stratified subset), split train (w) / val (α)"),
    ("--order", int, "1: first-order DARTS (DARTS-V1, default); 2: second order (DARTS-V2)"),
    ("--train-teacher", int, "with --teacher: train it this many epochs on the search's w half first "
     "(kept in OUT/teacher/); a teacher needs this or --teacher-weights"),
    ("--sd-weight", float, "sd-darts: weight λ of the self-distillation term (default 1)"),
    ("--sd-teachers", int, "sd-darts: K, how many previous supernets vote (default 2)"),
    ("--sd-temperature", float, "sd-darts: temperature T of the vote and the KL (default 3)"),
    ("--sd-voting", str, "sd-darts: soft (average probabilities, default) or hard (majority class)"),
    ("--sd-interval", int, "sd-darts: weight steps between snapshots (default 1; 0: one per epoch)"),
    ("--kd-weight", float, "with --teacher: weight of the KD term toward the teacher (default 1)"),
    ("--kd-temperature", float, "with --teacher: its temperature (default 4)"),
)


def _darts_options(args: argparse.Namespace) -> dict[str, Any]:
    keys = {"supernet_width": "width", "supernet_cells": "cells"}
    out = {}
    for flag, _, _ in _DARTS_FLAGS:
        name = flag[2:].replace("-", "_")
        if getattr(args, name) is not None:
            out[keys.get(name, name)] = getattr(args, name)
    if out and args.strategy not in ("darts", "sd-darts"):
        raise SearchKDError(f"--{next(iter(out)).replace('_', '-')} and the other supernet flags are for "
                            f"--strategy darts or sd-darts, not {args.strategy}")
    return out


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("search", help="search a space for the student that distils best")
    p.add_argument("--space", default="nb201", help="search space (default nb201), or nni:MODULE:ATTR (an NNI ModelSpace)")
    p.add_argument("--proxy", help="proxy, or several comma-separated (combined by --combine); default: kd, "
                   "or superlm for bert-* spaces and the autodistil strategy")
    p.add_argument("--strategy", default="evolution", help="random, evolution, nsga2, autodistil, darts, sd-darts (see `searchkd list strategies`)")
    p.add_argument("--teacher", help="teacher name, SPACE:ARCH, or auto (needs --teacher-candidates, --max-params)")
    p.add_argument("--teacher-candidates", type=_csv, help="candidate teachers for --teacher auto")
    p.add_argument("--teacher-weights", help="state dict of the teacher (weights_only)")
    p.add_argument("--budget", type=int, default=100, help="distinct proxy evaluations, or epochs for darts/sd-darts (default 100)")
    p.add_argument("--objectives", default="proxy", help="e.g. proxy or proxy,params (nsga2 takes several)")
    p.add_argument("--max-params", type=float, help="constraint: at most this many M params")
    p.add_argument("--combine", default="rank", choices=["rank"], help="how several proxies make one objective")
    p.add_argument("--data", help="embedded, npz:PATH, cifar10:DIR, cifar100:DIR (official batches: unpickled, "
                   "trusted files only), folder:DIR; text: embedded-text, "
                   "text:PATH (default: embedded, or embedded-text for bert-* spaces)")
    p.add_argument("--supernet", help="bert-*: a trained SuperLM directory to score with (default: train one in OUT/supernet)")
    p.add_argument("--supernet-steps", type=int, help="bert-*: SuperLM training steps (default 300)")
    p.add_argument("--supernet-lr", type=float, help="bert-*: SuperLM peak learning rate (default: the measured CPU "
                   "recipe; AutoDistil's own is 4e-5)")
    p.add_argument("--init", dest="supernet_init", metavar="teacher|random|hf:DIR",
                   help="bert-*: where the SuperLM's weights start (default: cut from the teacher when the "
                   "sub-space's largest shape allows, else random)")
    p.add_argument("--batch-size", type=int, help="images scored per proxy batch (default 64); bert-*: the SuperLM's "
                   "training batch (default 16)")
    p.add_argument("--runner", default="local", choices=["local", "ray"])
    p.add_argument("--ray-address", help="join a Ray cluster (auto, HOST:PORT, ray://HOST:PORT)")
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--gpus-per-trial", type=float, default=0)
    p.add_argument("--out", required=True, help="result directory")
    p.add_argument("--resume", action="store_true", help="continue the search logged in --out")
    p.add_argument("--ground-truth", help="a CSV (arch + --column) or nb201:FILE.pth: the best arch's accuracy is "
                   "looked up after the search and reported, never used by it")
    p.add_argument("--column", default="cifar10_test_acc", help="the accuracy column of --ground-truth")
    p.add_argument("--dataset", help="with --ground-truth nb201:FILE.pth: cifar10 (default), cifar10-valid, cifar100, "
                   "ImageNet16-120")
    g = p.add_argument_group("darts, sd-darts (--budget counts epochs)")
    for flag, typ, text in _DARTS_FLAGS:
        g.add_argument(flag, type=typ, help=text)
    common(p)
    p.set_defaults(run=_cmd_search)

    d = sub.add_parser("distill", help="distil the top students of a search and verify the proxy's ranking")
    d.add_argument("--result", required=True, help="a search's result.json (or its directory)")
    d.add_argument("--top", type=int, default=4, help="top-K students (default 4)")
    d.add_argument("--controls", type=int, default=4, help="random control students (default 4)")
    d.add_argument("--epochs", type=int, default=30)
    d.add_argument("--steps", type=int, help="BERT spaces: distillation steps per student (default: the SuperLM's)")
    d.add_argument("--task", help="BERT spaces: fine-tune the top students and their controls (random init, truncated "
                   "teacher, the teacher) on a labelled text task, pydoc-topics or csv:PATH (columns text,label), and "
                   "add a downstream block to verify.json")
    d.add_argument("--finetune-steps", type=int, help="with --task: fine-tuning steps per model and seed (default 300)")
    d.add_argument("--data", help="default: the search's data")
    d.add_argument("--teacher", help="default: the search's teacher")
    d.add_argument("--teacher-weights", help="a trained teacher's state dict (weights_only); whether it was trained "
                   "on the held-out images cannot be checked")
    d.add_argument("--train-teacher", type=int, metavar="EPOCHS",
                   help="train the teacher first (saved as DIR/teacher.pt, reused only on the same train/held-out split)")
    d.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip training each student without the teacher (the KD gain is then not reported)")
    d.add_argument("--kd-weight", type=float, default=0.9)
    d.add_argument("--temperature", type=float, default=4.0)
    d.add_argument("--feature-losses", default="", help="sp, ickd, or sp=W,ickd=W added to the KD loss")
    d.add_argument("--batch-size", type=int, default=128)
    d.add_argument("--lr", type=float, default=0.1)
    d.add_argument("--held-out", type=float, default=0.2, help="held-out fraction of npz/folder/embedded data")
    d.add_argument("--vanilla-best", help="also train this arch (e.g. the best without distillation) as a control")
    d.add_argument("--include", nargs="*", default=[], help="more archs to train")
    d.add_argument("--proxy", help="which proxy's ranking to verify (default: the search's)")
    d.add_argument("--resume", action="store_true", help="continue from the epoch checkpoints")
    common(d)
    d.set_defaults(run=_cmd_distill)

    s = sub.add_parser("sweep", help="a grid of searches (teachers x proxies x budgets x seeds) as Ray Tune trials")
    s.add_argument("config", help="the sweep's TOML file (see examples/sweep_nb201.toml)")
    s.add_argument("--ray-address", help="join a Ray cluster (auto, HOST:PORT, ray://HOST:PORT)")
    common(s, seed_device=False)
    s.set_defaults(run=_cmd_sweep)


def _cmd_search(args: argparse.Namespace) -> int:
    if args.ray_address and args.runner != "ray":
        raise SearchKDError("--ray-address needs --runner ray")
    import warnings

    with warnings.catch_warnings():  # searchkd's warnings (test images in --data) as one line each
        warnings.simplefilter("default", UserWarning)
        warnings.showwarning = _warning_lines(warnings.showwarning)
        res = _search(args)
    b = res.best
    if b is None:
        why = ("every score was non-finite (the proxy failed on every architecture: NaN or ±inf)"
               if res.all_nonfinite else "no architecture was feasible")
        raise SearchKDError(f"no best architecture after {res.trials} trials: {why}; the trials are in "
                            f"{args.out}/trials.jsonl, result.json has best null")
    print(f"best {b.arch}")
    print("  " + "  ".join(f"{k} {v:.6g}" for k, v in b.scores.items()) + f"  params {b.params:.4g} M  flops {b.flops:.4g} M")
    print(f"{res.trials} trials in {res.seconds:.1f} s; pareto set {len(res.pareto)}; wrote {args.out}/result.json")
    if res.student:
        print(f"student exported to {res.student} (transformers.AutoModel.from_pretrained; see searchkd.hf.export)")
    if args.strategy in ("darts", "sd-darts"):
        print(f"alphas per epoch: {args.out}/alphas.json, {args.out}/alphas.png")
    if res.ground_truth is not None:
        gt = res.ground_truth
        ix = f" (NAS-Bench-201 index {gt['index']})" if "index" in gt else ""
        print(f"ground truth (looked up after the search): {gt['column']} {gt['value']} for the best arch{ix}")
    return 0


def _search(args: argparse.Namespace) -> Any:
    from searchkd import api

    return api.search(space=args.space, proxy=args.proxy, strategy=args.strategy, budget=args.budget, seed=args.seed,
                      teacher=resolve_teacher_arg(args), teacher_weights=args.teacher_weights,
                      data=args.data,
                      supernet=args.supernet, supernet_steps=args.supernet_steps,
                      supernet_init=args.supernet_init, supernet_lr=args.supernet_lr,
                      batch_size=args.batch_size, device=args.device, objectives=tuple(_csv(args.objectives)),
                      max_params=args.max_params, combine=args.combine, out=args.out, resume=args.resume,
                      runner=args.runner, ray_address=args.ray_address, cpus_per_trial=args.cpus_per_trial,
                      gpus_per_trial=args.gpus_per_trial, progress=False if args.quiet else None,
                      ground_truth=args.ground_truth, column=args.column, dataset=args.dataset,
                      **_strategy_options(args))


def _strategy_options(args: argparse.Namespace) -> dict[str, Any]:
    opts = _darts_options(args)
    return {"options": opts} if opts else {}


def _cmd_distill(args: argparse.Namespace) -> int:
    import warnings

    from searchkd import api

    with warnings.catch_warnings():
        warnings.simplefilter("default", UserWarning)
        warnings.showwarning = _warning_lines(warnings.showwarning)
        rep = _distill(args, api)
    if rep.get("kind") == "text":  # a BERT space's report (searchkd.distill.text)
        from searchkd.distill.text import summary_lines

        print("\n".join(summary_lines(rep)))
        return 0
    print(f"teacher {rep.get('teacher', {}).get('accuracy', float('nan')):.2f} % held-out")
    for s in rep.get("students", []):
        score = s.get("score")
        line = f"{s.get('role', ''):<13} {s['arch']:<26} score {score if score is None else f'{score:.6g}'!s:<12}"
        line += f" KD {s['kd_accuracy']:.2f} %"
        if s.get("vanilla_accuracy") is not None:
            line += f"  no teacher {s['vanilla_accuracy']:.2f} %  gain {s['kd_gain']:+.2f}"
        print(line)
    v = rep.get("verdict", {})
    corr = v.get("proxy_vs_kd", {})
    print(f"proxy vs KD accuracy: kendall {corr.get('kendall_tau')} spearman {corr.get('spearman_rho')} (n={corr.get('n')}); "
          f"pick beats controls: mean {v.get('pick_beats_controls_mean')} best {v.get('pick_beats_controls_best')}")
    for note in rep.get("notes", []):
        print(f"note: {note}")
    print(f"wrote {rep.get('verify_json') or _beside(rep.get('result'), 'verify.json')}")
    return 0


def _beside(result: str | None, name: str) -> str:
    """``name`` in the folder of a search's ``result.json`` (or in that folder itself)."""
    from pathlib import Path

    if not result:
        return name
    where = Path(result)
    return str((where if where.is_dir() else where.parent) / name)


def _distill(args: argparse.Namespace, api: Any) -> dict[str, Any]:
    return api.distill(args.result, top=args.top, controls=args.controls, epochs=args.epochs, data=args.data,
                       teacher=args.teacher, teacher_weights=args.teacher_weights, train_teacher=args.train_teacher,
                       baseline=args.baseline, kd_weight=args.kd_weight, temperature=args.temperature,
                       feature_losses=args.feature_losses, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       device=args.device, resume=args.resume, progress=False if args.quiet else None,
                       vanilla_best=args.vanilla_best, include=tuple(args.include), held_out=args.held_out,
                       proxy=args.proxy, **({} if args.steps is None else {"steps": args.steps}),  # BERT only
                       **({} if args.task is None else {"task": args.task}),
                       **({} if args.finetune_steps is None else {"finetune_steps": args.finetune_steps}))


def _cmd_sweep(args: argparse.Namespace) -> int:
    import sys

    from searchkd import orchestrate

    for flag in ("seed", "device"):  # a sweep's own settings, per search: refused rather than ignored
        if getattr(args, flag) is not None:
            where = "a [grid] axis, e.g. seed = [0, 1, 2], or [search]" if flag == "seed" else "[search] (or a [grid] axis)"
            raise SearchKDError(f"sweep: --{flag} is not a sweep option: set {flag} in the sweep's TOML, in {where}")
    rows = orchestrate.run_sweep(args.config, ray_address=args.ray_address, debug=args.debug, quiet=args.quiet)
    failed = [r for r in rows if r.get("error")]
    for r in failed:  # one line each; the tracebacks only with --debug
        print(f"searchkd: error: search {r['name']} failed: {r['error']}", file=sys.stderr)
    if failed:
        hint = "" if args.debug else "; --debug shows the tracebacks"
        print(f"searchkd: error: {len(failed)} of {len(rows)} searches failed (a rerun redoes only those{hint})",
              file=sys.stderr)
        return 1
    return 0
