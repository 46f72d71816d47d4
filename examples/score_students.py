"""Score a few ResNet-CIFAR students against ResNet-56 with DisWOT and the capacity-gap law.

    python examples/score_students.py [--data npz:PATH]
"""

from __future__ import annotations

import argparse

import searchkd


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="embedded")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    rows = searchkd.score_archs("resnet_cifar", ["1-1-1", "3-3-3", "5-5-5"], ["diswot", "capacity_gap"],
                                teacher="resnet56", data=args.data, batch_size=args.batch_size, combine="rank")
    for r in rows:
        print(f"{r['arch']:<8} diswot {r['diswot']:.5f}  capacity_gap {r['capacity_gap']:.3f}  "
              f"mean rank {r['rank']:.1f}  {r['params']:.3f} M params")
    return rows


if __name__ == "__main__":
    main()
