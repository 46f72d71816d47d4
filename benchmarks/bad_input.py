"""The bad-input probes: every row of the bad-input table (docs/cli.md), run as a new user would.

Each probe runs the ``searchkd`` command line (or a few lines of Python, for the API's and the
files' cases) in a fresh folder and is *clean* when it does what the table says: bad input is
exit 2 with exactly one line ``searchkd: error: …`` on stderr and no traceback, and leaves no
``--out`` behind that would block the corrected command (or leaves a finished folder exactly
as it was); a documented behaviour (a warning, a note) is its exit code and its line.

    PYTHONPATH=. python benchmarks/bad_input.py --out benchmarks/out/bad_input.json

Writes ``--out`` (default ``runs/bad_input.json``): one row per probe (``name``, ``argv``,
``rc``, ``stderr`` (its last line), ``clean``, ``why`` when not) and the count clean / total.
About 3 minutes on a 2-core CPU (each probe starts a Python process that imports torch).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import RUNS, machine, write_json  # noqa: E402

ACM_FAST = ["--stage1-steps", "20", "--stage2-steps", "10", "--stage3-steps", "4", "--batch-size", "4"]
SMALL = ["--space", "resnet_cifar", "--proxy", "params", "--strategy", "random", "--budget", "2"]


def _tree(d: Path) -> str:
    """A fingerprint of a folder's files (names and contents): "did the probe change it"."""
    if not d.exists():
        return ""
    h = hashlib.sha256()
    for f in sorted(p for p in d.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(d)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def probes(t: Path, teacher: Path, prose: Path, gpt2: Path) -> list[tuple[str, list[str], int, str, str | None]]:
    """(name, argv (``py:CODE`` for Python), expected rc, fragment of the expected line, the
    folder that must be absent or unchanged afterwards)."""
    acm = ["acm", "--model", f"hf:{teacher}", "--data", f"text:{prose}"]
    done, acm_done = str(t / "done"), str(t / "acm-done")
    bad = [
        # the README's bad-input table, before issue 23
        ("unknown space", ["search", "--space", "nosuch", "--out", str(t / "o")], 2, "nosuch", "o"),
        ("unknown proxy", ["score", "--space", "nb201", "--proxy", "nosuch", "--sample", "1"], 2, "nosuch", None),
        ("unknown strategy", ["search", "--strategy", "nosuch", "--out", str(t / "o")], 2, "nosuch", "o"),
        ("unknown teacher", ["search", *SMALL, "--teacher", "nosuch", "--out", str(t / "o")], 2, "nosuch", "o"),
        ("malformed arch", ["score", "--space", "nb201", "--proxy", "params", "--arch", "|bad|"], 2, "", None),
        ("missing data file", ["search", *SMALL, "--data", "npz:/nonexistent.npz", "--out", str(t / "o")], 2,
         "not found", "o"),
        ("corrupt data file", ["search", *SMALL, "--data", f"npz:{t / 'garbage.npz'}", "--out", str(t / "o")], 2, "",
         "o"),
        ("missing teacher weights", ["search", *SMALL[:2], "--proxy", "capacity_gap", *SMALL[4:], "--teacher-weights",
                                     "/nonexistent.pt", "--out", str(t / "o")], 2, "not found", "o"),
        ("corrupt teacher weights", ["search", *SMALL[:2], "--proxy", "capacity_gap", *SMALL[4:], "--teacher-weights",
                                     str(t / "garbage.npz"), "--out", str(t / "o")], 2, "cannot read", "o"),
        ("teacher weights no proxy reads", ["search", *SMALL, "--teacher-weights", str(t / "garbage.npz"), "--out",
                                            str(t / "o")], 2, "no proxy of this search", "o"),
        ("--out under a file", ["search", *SMALL, "--out", str(t / "garbage.npz" / "o")], 2, "is a file", None),
        ("--out under /proc", ["search", *SMALL, "--out", "/proc/searchkd-probe"], 2, "cannot write", None),
        ("--batch-size 0", ["search", *SMALL, "--batch-size", "0", "--out", str(t / "o")], 2, "batch size", "o"),
        ("--seed -1", ["search", *SMALL, "--seed", "-1", "--out", str(t / "o")], 2, "seed", "o"),
        ("--max-params 0", ["search", *SMALL, "--max-params", "0", "--out", str(t / "o")], 2, "max_params", "o"),
        ("--device cuda without CUDA", ["search", *SMALL, "--device", "cuda", "--out", str(t / "o")], 2, "CUDA", "o"),
        ("--ray-address without --runner ray", ["search", *SMALL, "--ray-address", "auto", "--out", str(t / "o")], 2,
         "--runner ray", "o"),
        ("sweep --seed", ["sweep", "x.toml", "--seed", "1"], 2, "not a sweep option", None),
        ("search over a finished --out", ["search", *SMALL, "--seed", "3", "--out", done], 2, "", "done"),
        ("--resume with another config", ["search", *SMALL, "--seed", "3", "--resume", "--out", done], 2, "", "done"),
        ("distill of a missing result", ["distill", "--result", "/nonexistent/result.json"], 2, "", None),
        ("bench without its ground truth", ["bench", "correlation", "--space", "nb201", "--proxy", "params",
                                            "--ground-truth", "/nonexistent.csv", "--column", "a", "--out",
                                            str(t / "c.json")], 2, "not found", None),
        ("acm --learners 1", [*acm, "--learners", "1", "--out", str(t / "o")], 2, "at least 2", "o"),
        ("acm --budgets 1.5", [*acm, "--budgets", "1.5", "--out", str(t / "o")], 2, "outside (0, 1]", "o"),
        ("acm on image data", [*acm[:3], "--data", "embedded", "--out", str(t / "o")], 2, "text data", "o"),
        ("acm of a model without BERT FFNs", ["acm", "--model", f"hf:{gpt2}", "--data", f"text:{prose}", "--out",
                                              str(t / "o")], 2, "", "o"),
        # issue 23
        ("1 acm over a finished --out, --learners 2", [*acm, "--budgets", "1", *ACM_FAST, "--learners", "2", "--out",
                                                       acm_done], 2, "other settings", "acm-done"),
        ("1 acm over a finished --out, --stage3-steps 7", [*acm, "--budgets", "1", *ACM_FAST, "--stage3-steps", "7",
                                                           "--out", acm_done], 2, "other settings", "acm-done"),
        ("2 an ACM folder as hf: teacher", ["search", "--space", "bert-tiny", "--strategy", "autodistil", "--teacher",
                                            f"hf:{t / 'acm-done' / 'model-b1.0'}", "--data", f"text:{prose}",
                                            "--out", str(t / "o")], 2, "converted by `searchkd acm`", "o"),
        ("2 an ACM folder in plain transformers", ["py:import transformers,sys; transformers.AutoModel.from_pretrained("
                                                   f"{str(t / 'acm-done' / 'model-b1.0')!r})"], 1, "searchkd_acm", None),
        ("3 --sd-weight nan", ["search", "--strategy", "sd-darts", "--sd-weight", "nan", "--out", str(t / "o")], 2,
         "finite number", "o"),
        ("3 --max-params inf", ["search", *SMALL, "--max-params", "inf", "--out", str(t / "o")], 2, "finite", "o"),
        ("3 acm --budgets nan", [*acm, "--budgets", "0.5,nan", "--out", str(t / "o")], 2, "finite", "o"),
        ("4 --supernet-width 0", ["search", "--strategy", "sd-darts", "--supernet-width", "0", "--out", str(t / "o")],
         2, "positive integer", "o"),
        ("4 --supernet-cells 0", ["search", "--strategy", "darts", "--supernet-cells", "0", "--out", str(t / "o")], 2,
         "positive integer", "o"),
        ("5 --sd-teachers on darts", ["search", "--strategy", "darts", "--sd-teachers", "3", "--out", str(t / "o")], 2,
         "self-distillation", "o"),
        ("5 --supernet-steps on nb201 evolution", ["search", "--space", "nb201", "--supernet-steps", "5", "--out",
                                                   str(t / "o")], 2, "SuperLM", "o"),
        ("5 --sd-voting on evolution", ["search", "--sd-voting", "hard", "--out", str(t / "o")], 2, "darts", "o"),
        ("5 --column without --ground-truth", ["search", *SMALL, "--column", "x", "--out", str(t / "o")], 2,
         "--ground-truth", "o"),
        ("5 --cpus-per-trial on a local run", ["search", *SMALL, "--cpus-per-trial", "4", "--out", str(t / "o")], 2,
         "locally", "o"),
        ("6 score --proxy superlm without a SuperLM", ["score", "--space", "bert-tiny", "--proxy", "superlm",
                                                       "--teacher", f"hf:{teacher}", "--data", f"text:{prose}",
                                                       "--sample", "1"], 2, "--supernet DIR", None),
        ("7 load_acm by the model's name", ["py:from searchkd.api import load_acm; load_acm("
                                            f"{str(t / 'acm-done' / 'model-b1.0')!r}, base_id={'hf:' + str(teacher)!r})"],
         0, "", None),
        ("8 hf: of a non-BERT model", ["search", "--space", "bert-tiny", "--teacher", f"hf:{gpt2}", "--out",
                                       str(t / "o")], 2, "", "o"),
        ("9 benchmarks/acm.py writes under runs/", ["py:import sys; sys.path.insert(0, '.'); import benchmarks.acm as b,"
                                                     " inspect; assert 'RUNS / \"acm.json\"' in inspect.getsource(b)"],
         0, "", None),
        ("10 a converted model's safetensors 0644", ["py:import os,stat; m = stat.S_IMODE(os.stat("
                                                     f"{str(t / 'acm-done' / 'model-b1.0' / 'model.safetensors')!r})"
                                                     ".st_mode); assert m == 0o644, oct(m)"], 0, "", None),
        ("11 evolution below its population says so", ["search", *SMALL[:4], "--strategy", "evolution", "--budget",
                                                        "4", "--out", str(t / "evo")], 0,
         "searchkd: warning: evolution: --budget 4 is not above the population", None),
    ]
    return [(name, [a.replace(str(t / "o"), str(t / f"o{i}")) for a in argv], rc, frag,
             f"o{i}" if keep == "o" else keep) for i, (name, argv, rc, frag, keep) in enumerate(bad)]


def run_probe(name: str, argv: list[str], want: int, fragment: str, keep: str | None, t: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    before = _tree(t / keep) if keep else ""
    if argv[0].startswith("py:"):
        cmd = [sys.executable, "-c", argv[0][3:]]
    else:
        cmd = [sys.executable, "-m", "searchkd", *argv, *([] if argv[0] in ("sweep",) else ["--quiet"])]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    lines = p.stderr.strip().splitlines()
    why = []
    if p.returncode != want:
        why.append(f"rc {p.returncode}, expected {want}")
    if argv[0].startswith("py:"):
        if fragment and fragment not in p.stderr:
            why.append(f"no {fragment!r} in stderr")
    elif want == 2:
        if len(lines) != 1 or not lines[0].startswith("searchkd: error: "):
            why.append(f"{len(lines)} stderr lines, not one `searchkd: error:` line")
        if fragment and fragment not in p.stderr:
            why.append(f"no {fragment!r} in the line")
    elif fragment and not any(ln.startswith(fragment) for ln in lines):
        why.append(f"no line starting {fragment!r}")
    if "Traceback" in p.stderr and not argv[0].startswith("py:"):
        why.append("a traceback")
    if keep and _tree(t / keep) != before:
        why.append(f"{keep} was {'left behind' if not before else 'changed'}")
    return {"name": name, "argv": argv, "rc": p.returncode, "stderr": lines[-1] if lines else "",
            "clean": not why, **({"why": "; ".join(why)} if why else {})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(RUNS / "bad_input.json"))
    ap.add_argument("--only", help="run only the probes whose name contains this")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="searchkd-probes-") as tmp:
        t = Path(tmp)
        teacher, prose, gpt2 = _setup(t)
        rows = []
        for name, args, want, fragment, keep in probes(t, teacher, prose, gpt2):
            if a.only and a.only not in name:
                continue
            rows.append(run_probe(name, args, want, fragment, keep, t))
            r = rows[-1]
            print(f"{'clean' if r['clean'] else 'NOT CLEAN':9} rc {r['rc']}  {name}" + (f"  ({r['why']})" if not r["clean"] else ""))
    clean = sum(r["clean"] for r in rows)
    print(f"{clean} of {len(rows)} clean")
    write_json(Path(a.out), {"benchmark": "bad_input", "machine": machine(), "clean": clean, "total": len(rows),
                             "seconds": time.perf_counter() - t0, "probes": rows})
    return 0 if clean == len(rows) else 1


def _setup(t: Path) -> tuple[Path, Path, Path]:
    """A tiny BERT teacher and its prose, a GPT-2 folder, a garbage file, a finished search and a
    finished ACM conversion (the probes that rerun over a finished --out)."""
    from transformers import GPT2Config, GPT2Model

    from tests._text import write_text_setup, write_tokenizer

    teacher, prose = write_text_setup(t, paragraphs=40)
    gpt2 = t / "gpt2"
    gpt2.mkdir()
    GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=write_tokenizer(gpt2), n_positions=64)).save_pretrained(gpt2)
    (t / "garbage.npz").write_bytes(b"not a file of this kind")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for argv in (["search", *SMALL, "--out", str(t / "done")],
                 ["acm", "--model", f"hf:{teacher}", "--data", f"text:{prose}", "--budgets", "1", *ACM_FAST, "--out",
                  str(t / "acm-done")]):
        subprocess.run([sys.executable, "-m", "searchkd", *argv, "--quiet"], check=True, env=env, cwd=ROOT,
                       capture_output=True)
    return teacher, prose, gpt2


if __name__ == "__main__":
    sys.exit(main())
