"""A small regularized-evolution search of NAS-Bench-201 with DisWOT, results in runs/example.

    python examples/search_nb201.py [--budget 40] [--out runs/example]
"""

from __future__ import annotations

import argparse

import searchkd


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--out", default="runs/example")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    res = searchkd.search(space="nb201", proxy="diswot", strategy="evolution", budget=args.budget, seed=0,
                          batch_size=args.batch_size, out=args.out, resume=True)
    print(f"best {res.best.arch}  diswot {res.best.scores['diswot']:.5f}  {res.best.params:.3f} M params")
    return res


if __name__ == "__main__":
    main()
