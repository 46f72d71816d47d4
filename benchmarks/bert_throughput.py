"""What weight sharing costs per training step: a SuperLM subnet (the supernet's weights sliced
on the fly, ``net(ids, mask, active=shape)``) against a plain student of the same shape
(``extract``: its own dense weights), forward + backward on the same batch, interleaved in
one run, for the sub-space's smallest, a middle and its largest arch. The ratio is the
slicing overhead (target ≤ 1.3). The teacher is left out: it costs both sides the same.

    PYTHONPATH=. python benchmarks/bert_throughput.py --space bert-tiny --batch-size 32 --reps 10

Writes ``--out`` (default ``runs/bert_throughput.json``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="bert-tiny")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RUNS / "bert_throughput.json"))
    args = ap.parse_args(argv)

    import torch

    from searchkd.spaces import get_space
    from searchkd.spaces._bert_net import BertNet, extract

    torch.set_num_threads(args.threads)
    space = get_space(args.space)
    torch.manual_seed(0)
    net = BertNet(space.net_config(space.largest(), pooler=False, dropout=0.0))
    ids = torch.randint(1000, space.vocab_size, (args.batch_size, args.seq_len))
    mask = torch.ones_like(ids)
    archs = [space.smallest(), space.arch(space.decode([1, 1, 1, 1])), space.largest()]

    def step(model, **kw) -> float:
        t0 = time.perf_counter()
        out = model(ids, mask, **kw)
        (out.last_hidden_state.float().pow(2).mean() + out.q.float().pow(2).mean()).backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    rows = []
    for arch in archs:
        plain = extract(net, arch.shape())
        step(net, active=arch.shape()), step(plain)  # warm-up
        sliced_t, plain_t = [], []
        for _ in range(args.reps):  # interleaved, so load changes hit both sides alike
            sliced_t.append(step(net, active=arch.shape()))
            plain_t.append(step(plain))
        s, p = statistics.median(sliced_t), statistics.median(plain_t)
        tokens = args.batch_size * args.seq_len
        rows.append({"arch": str(arch), "sliced_s_per_step": s, "plain_s_per_step": p, "ratio_sliced_over_plain": s / p,
                     "sliced_tokens_per_s": tokens / s, "plain_tokens_per_s": tokens / p})
        print(f"{arch}: sliced {s * 1000:.0f} ms, plain {p * 1000:.0f} ms per step, ratio {s / p:.3f}", flush=True)
    write_json(Path(args.out), {"command": "python benchmarks/bert_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
                                "space": args.space, "batch_size": args.batch_size, "seq_len": args.seq_len,
                                "reps": args.reps, "rows": rows, "max_ratio": max(r["ratio_sliced_over_plain"] for r in rows),
                                "machine": machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
