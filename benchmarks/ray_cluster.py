"""A real multi-node Ray cluster on loopback: one search through ``--ray-address`` with 1 and
with 2 worker nodes.

Starts ``ray start --head`` on 127.0.0.1 with no CPUs of its own (it only schedules), then
worker nodes of ``--cpus-per-node`` CPUs each with ``ray start --address``, exactly as on a
cluster (token authentication on, as Ray 2.60 sets it up). The same NB201 random search (same
seed, so the same cells and the same best arch, checked) runs as ``searchkd search --runner ray
--ray-address 127.0.0.1:PORT`` with 1 node, then again after a second node joins. At the end
``ray stop`` ends every Ray process on this machine: do not run it beside other Ray work.
Writes ``benchmarks/out/ray_cluster.json``.

    PYTHONPATH=. python benchmarks/ray_cluster.py --budget 1000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, write_json  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, env: dict) -> None:
    exe = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if exe is None:
        raise SystemExit("ray_cluster.py: the `ray` command is not installed (pip install 'ray[tune]')")
    proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise SystemExit(f"ray_cluster.py: ray {' '.join(args)} failed: {proc.stderr.strip()[-400:]}")


def _wait_cpus(address: str, cpus: float, env: dict, timeout: float = 60.0) -> None:
    code = ("import ray, sys, time\nray.init(address=sys.argv[1], logging_level='ERROR')\n"
            "t = time.time()\nwhile ray.cluster_resources().get('CPU', 0) < float(sys.argv[2]) and time.time() - t < 60:\n"
            "    time.sleep(0.5)\nprint(ray.cluster_resources().get('CPU', 0))\n")
    out = subprocess.run([sys.executable, "-c", code, address, str(cpus)], env=env, capture_output=True, text=True,
                         timeout=timeout + 30)
    got = float((out.stdout.strip().splitlines() or ["0"])[-1])
    if got < cpus:
        raise SystemExit(f"ray_cluster.py: the cluster shows {got} CPUs, expected {cpus}: {out.stderr.strip()[-300:]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proxy", default="synflow")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="npz:../shared/data/images/cifar10_test_1000.npz")
    ap.add_argument("--nodes", default="1,2", help="worker-node counts to time, in order (default 1,2)")
    ap.add_argument("--cpus-per-node", type=int, default=1)
    ap.add_argument("--out", default=str(RUNS / "ray_cluster.json"))
    args = ap.parse_args(argv)
    counts = sorted({int(n) for n in args.nodes.split(",")})

    port = _free_port()
    address = f"127.0.0.1:{port}"
    # the nodes of a token-authenticated cluster find the token `ray start --head` saved
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", PYTHONPATH=str(ROOT))
    env.pop("RAY_ADDRESS", None)
    env.pop("OMP_NUM_THREADS", None)
    rows = []
    t0 = time.perf_counter()
    _ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "0",
         "--include-dashboard", "false", "--disable-usage-stats", env=env)
    head_s = time.perf_counter() - t0
    try:
        nodes = 0
        with tempfile.TemporaryDirectory() as tmp:
            for want in counts:
                t = time.perf_counter()
                while nodes < want:
                    _ray("start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus",
                         str(args.cpus_per_node), "--disable-usage-stats", env=env)
                    nodes += 1
                _wait_cpus(address, nodes * args.cpus_per_node, env)
                join_s = time.perf_counter() - t
                out = Path(tmp) / f"nodes{nodes}"
                cmd = [sys.executable, "-m", "searchkd", "search", "--space", "nb201", "--proxy", args.proxy,
                       "--strategy", "random", "--budget", str(args.budget), "--seed", str(args.seed), "--data", args.data,
                       "--runner", "ray", "--ray-address", address, "--cpus-per-trial", "1", "--quiet", "--out", str(out)]
                t = time.perf_counter()
                search_env = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}  # searchkd finds the token itself
                proc = subprocess.run(cmd, cwd=ROOT, env=search_env, capture_output=True, text=True)
                seconds = time.perf_counter() - t
                if proc.returncode != 0:
                    raise SystemExit(f"ray_cluster.py: the search on {nodes} node(s) failed: {proc.stderr.strip()[-400:]}")
                res = json.loads((out / "result.json").read_text())
                rows.append({"worker_nodes": nodes, "cpus": nodes * args.cpus_per_node, "seconds": seconds,
                             "node_start_seconds": join_s, "trials": res.get("trials"), "best": res["best"]["arch"]})
                print(f"{nodes} worker node(s): {seconds:.1f} s, best {res['best']['arch']}", flush=True)
    finally:
        subprocess.run([shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray", "stop", "--force"],
                       env=env, capture_output=True, timeout=120)
    base = rows[0]["seconds"]
    out = {"command": "python benchmarks/ray_cluster.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "proxy": args.proxy, "budget": args.budget, "seed": args.seed, "data": args.data, "address": "127.0.0.1:PORT",
           "head_cpus": 0, "cpus_per_node": args.cpus_per_node, "head_start_seconds": head_s,
           "rows": [dict(r, speedup_vs_first=base / r["seconds"]) for r in rows],
           "same_best": len({r["best"] for r in rows}) == 1, "machine": machine()}
    write_json(Path(args.out), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
