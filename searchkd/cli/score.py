"""``searchkd score`` and ``searchkd bench``: argument parsing only."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from searchkd.cli.common import csv_list as _csv, one_line_warnings, resolve_teacher_arg
from searchkd.errors import SearchKDError

__all__ = ["register"]


def _scoring_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", required=True, help="search space (see `searchkd list spaces`), or nni:MODULE:ATTR")
    p.add_argument("--proxy", required=True, type=_csv, help="proxy name(s), comma-separated")
    p.add_argument("--teacher", help="teacher name, SPACE:ARCH, or auto (pick from --teacher-candidates by the "
                   "capacity-gap law for the --max-params budget); default: the space's teacher")
    p.add_argument("--teacher-candidates", type=_csv, help="candidate teachers for --teacher auto")
    p.add_argument("--max-params", type=float, help="student budget in M params (used by --teacher auto)")
    p.add_argument("--teacher-weights", help="state dict of the teacher (weights_only)")
    p.add_argument("--data", help="default: embedded, or embedded-text for bert-* spaces; embedded, npz:PATH, cifar10:DIR, cifar100:DIR (official batches: unpickled, trusted files only), folder:DIR; bert-*: embedded-text, text:PATH")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--combine", choices=["rank"], help="also score by the mean rank over the proxies")


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("score", help="score architectures with training-free proxies")
    _scoring_args(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--arch", nargs="+", help="architecture string(s)")
    src.add_argument("--archs-file", help="file with one architecture per line")
    src.add_argument("--sample", type=int, help="score N seeded random architectures")
    p.add_argument("--supernet", help="bert-*, --proxy superlm: a trained SuperLM directory (a search's OUT/supernet, "
                   "trained from the same teacher, --data and --seed)")
    p.add_argument("--out", help="write the table as .csv or .jsonl")
    common(p)
    p.set_defaults(run=_cmd_score)

    b = sub.add_parser("bench", help="benchmarks: proxy vs ground-truth rank correlation")
    bsub = b.add_subparsers(dest="bench", metavar="BENCH", required=True)
    c = bsub.add_parser("correlation", help="Kendall/Spearman/Pearson of proxies vs a ground-truth column, plus a scatter PNG")
    _scoring_args(c)
    c.add_argument("--ground-truth", required=True, help="CSV with columns arch and --column, or nb201:FILE.pth "
                   "(the official NAS-Bench-201 file, a pickle: trusted input; needs the nas-bench-201 package)")
    c.add_argument("--column", required=True, help="ground-truth column, e.g. cifar10_test_acc; for nb201:FILE "
                   "test-accuracy, valid-accuracy, … (or DATASET_test_acc)")
    c.add_argument("--dataset", help="with nb201:FILE: cifar10 (default), cifar10-valid, cifar100, ImageNet16-120")
    c.add_argument("--sample", type=int, help="score N seeded random archs of the CSV (default all)")
    c.add_argument("--out", required=True, help="JSON output (a PNG is written beside it)")
    common(c)
    c.set_defaults(run=_cmd_correlation)


def _archs(args: argparse.Namespace, space: Any) -> list[str]:
    import numpy as np

    if args.arch:
        return [space.validate(a) for a in args.arch]
    if args.archs_file:
        path = Path(args.archs_file)
        if not path.is_file():
            raise SearchKDError(f"archs file not found: {path}")
        archs = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        if not archs:
            raise SearchKDError(f"{path} holds no architectures")
        return [space.validate(a) for a in archs]
    n = args.sample if args.sample is not None else 8
    if n <= 0:
        raise SearchKDError(f"--sample must be positive, got {n}")
    rng = np.random.default_rng(args.seed)
    return [space.sample(rng) for _ in range(n)]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return str(v)


def _check_out(path: str | None, suffixes: tuple[str, ...]) -> None:
    """The suffix, and that the file can be written: checked before anything is scored."""
    if path and Path(path).suffix not in suffixes:
        raise SearchKDError(f"--out must end in {' or '.join(suffixes)}, got {path}")
    if path:
        from searchkd.io import check_out_writable

        check_out_writable(path, directory=False)


@one_line_warnings
def _cmd_score(args: argparse.Namespace) -> int:
    from searchkd import api
    from searchkd.io import write_rows

    _check_out(args.out, (".csv", ".jsonl"))
    if args.batch_size <= 0:
        raise SearchKDError(f"--batch-size must be positive, got {args.batch_size}")
    space = api.get_space(args.space)
    archs = _archs(args, space)
    rows = api.score_archs(args.space, archs, args.proxy, teacher=resolve_teacher_arg(args), data=args.data or api.default_data(args.space),
                           batch_size=args.batch_size, seed=args.seed, device=args.device, combine=args.combine,
                           teacher_weights=args.teacher_weights, progress=False if args.quiet else None,
                           supernet=args.supernet)
    proxies = list(dict.fromkeys(args.proxy))  # `--proxy params`: one params column, not two
    cols = ["arch", *proxies, *(["rank"] if args.combine else []), *(c for c in ("params", "flops") if c not in proxies)]
    table = [{c: r[c] for c in cols} for r in rows]
    if args.out:
        write_rows(args.out, table)
    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in table)) for c in cols}
    print("  ".join(f"{c:<{widths[c]}}" for c in cols))
    for r in table:
        print("  ".join(f"{_fmt(r[c]):<{widths[c]}}" for c in cols))
    return 0


@one_line_warnings
def _cmd_correlation(args: argparse.Namespace) -> int:
    from searchkd import api
    from searchkd.api import correlation

    _check_out(args.out, (".json",))
    res = correlation(args.space, args.proxy, args.ground_truth, args.column, sample=args.sample,
                      data=args.data or api.default_data(args.space),
                      batch_size=args.batch_size, teacher=resolve_teacher_arg(args), seed=args.seed, device=args.device,
                      combine=args.combine, out=args.out, progress=False if args.quiet else None, dataset=args.dataset)
    print(f"{'proxy':<24} {'kendall':>8} {'spearman':>9} {'pearson':>8} {'s/arch':>8}   (n={res['n']}, {args.column})")
    for name, s in res["proxies"].items():
        print(f"{name:<24} {s['kendall']:>8.3f} {s['spearman']:>9.3f} {s['pearson']:>8.3f} {s['seconds_per_arch']:>8.3f}")
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.png')}")
    return 0
