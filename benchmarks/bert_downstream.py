"""Issue 20 benchmarks 1, 3 and 4 on this CPU: what the AutoDistil student is good for.

1. A bert-tiny search from MiniLM-L6 (the SuperLM cut from the teacher, ``--supernet-steps``
   sandwich steps on the prose of the pydoc topics *outside* the downstream task, so the
   SuperLM never reads a task sentence; every one of the 256 subnets scored), then its best
   student unconstrained and its best under ``--max-params`` (read from the same 256 scores,
   what a ``--max-params`` search with budget 256 picks), each fine-tuned on ``pydoc-topics``
   beside its controls (random init, truncated teacher, the teacher) over ``--seeds``
   (:func:`searchkd.distill.downstream.downstream_block`).
3. Teacher agreement of those students on the held-out rows of ``embedded-text`` (the rows the
   pre-issue-20 figures .590 / .066 were measured on), beside the truncated teacher at the
   same shape (:class:`searchkd.distill.text.TeacherAgreement`).
4. The wall time of the search (SuperLM training, scoring, export).

Stages (each merges into ``--out``): ``search`` (the search alone, timed), ``students`` (search,
students and their controls, agreement), ``teacher`` (the teacher's fine-tuning rows), ``fidelity``
(benchmark 2: 8 subnets at evenly spaced sizes, the SuperLM's score against their task accuracy);
``merge`` copies the teacher rows of a ``teacher`` run written to another file (run beside
``students`` on the second core).

    PYTHONPATH=. python benchmarks/bert_downstream.py --stage students --out benchmarks/out/bert_downstream.json
    PYTHONPATH=. python benchmarks/bert_downstream.py --stage teacher --out benchmarks/out/bert_downstream.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bert_recipe import other_topics_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=["search", "students", "teacher", "fidelity", "merge"], required=True,
                   help="merge: copy the teacher rows and the fidelity block of --teacher-report (comma-separated "
                   "reports of --stage teacher / fidelity runs written elsewhere, beside --stage students) into --out")
    p.add_argument("--teacher-report")
    p.add_argument("--work", default="runs/bert_downstream")
    p.add_argument("--supernet-steps", type=int, default=60)
    p.add_argument("--supernet-lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-params", type=float, default=6.0)
    p.add_argument("--finetune-steps", type=int, default=60)
    p.add_argument("--finetune-lr", type=float, default=None, help="default: distill --task's")
    p.add_argument("--fidelity-subnets", type=int, default=8)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", default="runs/bert_downstream.json")
    args = p.parse_args(argv)

    import torch

    from searchkd import api
    from searchkd.distill.downstream import DEFAULT_FINETUNE_LR, downstream_block
    from searchkd.distill.text import TeacherAgreement, fit_rows
    from searchkd.evaluate.text import _qkv, _teacher, text_split
    from searchkd.io import read_json, write_json
    from searchkd.supernets import SuperLM
    from searchkd.supernets.superlm_init import cut_net, pretrained_shape

    if args.stage == "merge":  # the teacher rows and the fidelity block of runs written to other files
        report = read_json(args.out)
        for path in (args.teacher_report or "").split(","):
            if not path:
                continue
            other = read_json(path)
            rows = [r for r in other.get("downstream", {}).get("rows", []) if r["role"] == "teacher"]
            if rows:
                report["downstream"]["rows"] = [r for r in report["downstream"]["rows"] if r["role"] != "teacher"] + rows
                report["seconds_teacher"] = other.get("seconds_teacher")
            for key in ("fidelity", "seconds_fidelity"):
                if key in other:
                    report[key] = other[key]
            report["commands"] += other["commands"]
        report["commands"].append("python benchmarks/bert_downstream.py " + " ".join(argv or sys.argv[1:]))
        write_json(args.out, report)
        print(f"wrote {args.out}")
        return 0
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    work = Path(args.work)
    data = other_topics_text(work / "other_topics.txt")
    out = Path(args.out)
    report = read_json(out) if out.is_file() else {}
    report.setdefault("commands", []).append("python benchmarks/bert_downstream.py " + " ".join(argv or sys.argv[1:]))
    run_dir = work / "search"
    teacher = _teacher("minilm-l6", None, "cpu")
    train, _ = text_split(data, teacher, 0)
    t1 = time.perf_counter()
    if args.stage == "teacher":  # needs no SuperLM: runs beside the search
        res, trials, lm = None, [], None
    else:
        res = api.search(space="bert-tiny", strategy="autodistil", teacher="minilm-l6", data=data, budget=256,
                         supernet_steps=args.supernet_steps, supernet_lr=args.supernet_lr, batch_size=args.batch_size,
                         device="cpu", out=str(run_dir), resume=(run_dir / "config.json").is_file(), progress=False)
        if args.stage == "search":  # the search alone (benchmark 4's wall time), before any fine-tuning
            report["search_only"] = {"wall_seconds": time.perf_counter() - t1, "result": str(run_dir / "result.json")}
            write_json(out, report)
            print(f"search: {time.perf_counter() - t1:.0f} s; wrote {out}")
            return 0
        trials = [json.loads(x) for x in (run_dir / "trials.jsonl").read_text().splitlines()]
        ranked = sorted(trials, key=lambda t: -t["scores"]["superlm"])
        best = ranked[0]["arch"]
        small = next(t["arch"] for t in ranked if t["params"] <= args.max_params)
        lm = SuperLM.load(run_dir / "supernet", _qkv(teacher), teacher=teacher.info.id, device="cpu")
    seeds = [int(s) for s in args.seeds.split(",")]
    kw = dict(lm=lm, teacher=teacher, space=getattr(lm, "space", None), superlm_rows=train.sentences, split_seed=0,
              steps=args.finetune_steps, seeds=seeds, device="cpu",
              **({} if args.finetune_lr is None else {"lr": args.finetune_lr}))
    if args.stage == "students":
        meta = read_json(run_dir / "supernet" / "config.json")
        report["search"] = {"result": str(run_dir / "result.json"), "seconds": res.seconds if hasattr(res, "seconds") else None,
                            "wall_seconds_this_call": time.perf_counter() - t1, "supernet": meta["config"],
                            "supernet_step": meta["step"], "n_train_rows": len(train), "best": best,
                            f"best_max_params_{args.max_params:g}": small,
                            "params": {a: lm.space.cost(a)["params"] for a in (best, small)}}
        archs = list(dict.fromkeys([small, best]))
        report["downstream"] = downstream_block("pydoc-topics", archs=archs, with_teacher=False, **kw)
        # teacher agreement on embedded-text's held-out rows (the pre-issue-20 figures' rows)
        e_train, e_held = text_split("embedded-text", teacher, 0)
        agree = TeacherAgreement(teacher, fit_rows(e_train, 0), e_held.tensors(range(len(e_held))), batch_size=16)
        base = teacher.model
        t_state, t_shape = {k: v.detach() for k, v in base.state_dict().items()}, pretrained_shape(base.config)
        report["agreement"] = {"rows": "embedded-text held-out (61 rows), map fitted on its train rows",
                               "floor": agree.floor(), "models": {}}
        for a in archs:
            report["agreement"]["models"][a] = {
                "student": agree(lm.extract(a)),
                "truncated-teacher": agree(cut_net(lm.net.config, t_state, t_shape, shape=lm.space.arch(a).shape()))}
        write_json(out, report)
    elif args.stage == "fidelity":
        # benchmark 2: the SuperLM's score of 8 subnets at evenly spaced sizes against the task
        # accuracy of each, extracted and fine-tuned standalone the same way as benchmark 1
        from bert_recipe import quantile_archs
        from searchkd.bench.stats import rank_stats

        score = {t["arch"]: t["scores"]["superlm"] for t in trials}
        archs = quantile_archs(lm.space, args.fidelity_subnets)
        done = {r["arch"]: r for r in report.get("fidelity", {}).get("rows", [])}
        rows = []
        for a in archs:
            if a not in done:
                block = downstream_block("pydoc-topics", archs=[a], with_teacher=False, controls=False, **kw)
                done[a] = {**block["rows"][0], "superlm_score": score[a]}
            rows.append(done[a])
            report["fidelity"] = {"rows": rows, "steps": args.finetune_steps, "seeds": seeds,
                                  "lr": kw.get("lr", DEFAULT_FINETUNE_LR)}
            write_json(out, report)
        acc = [r["accuracy_mean"] for r in rows]
        report["fidelity"]["superlm_vs_accuracy"] = rank_stats([r["superlm_score"] for r in rows], acc, p_values=True)
        report["fidelity"]["params_vs_accuracy"] = rank_stats([r["params"] for r in rows], acc, p_values=True)
        for r in rows:
            print(f"{r['arch']:<20} {r['params']:6.2f} M  superlm {r['superlm_score']:.3f}  "
                  f"acc {r['accuracy_mean']:.3f} ± {r['accuracy_sd']:.3f}")
        print("superlm τ", report["fidelity"]["superlm_vs_accuracy"]["kendall"],
              "params τ", report["fidelity"]["params_vs_accuracy"]["kendall"])
    else:
        block = downstream_block("pydoc-topics", archs=[], with_teacher=True, **kw)
        report.setdefault("downstream", {}).setdefault("rows", [])
        report["downstream"]["rows"] = [r for r in report["downstream"]["rows"] if r["role"] != "teacher"] + block["rows"]
        for r in block["rows"]:  # the recipe travels with the rows a merge copies
            r.update({k: block[k] for k in ("steps", "lr", "seeds", "batch_size")})
    report["seconds_" + args.stage] = time.perf_counter() - t0
    report["machine"] = {"torch": torch.__version__, "threads": 1, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(out, report)
    for r in report.get("downstream", {}).get("rows", []):
        print(f"{r['role']:<18} {r['arch'] or 'teacher':<20} {r['accuracy_mean']:.3f} ± {r['accuracy_sd']:.3f} "
              f"({r['params']:.2f} M, {r['seconds']:.0f} s)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
