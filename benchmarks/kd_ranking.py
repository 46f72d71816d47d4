"""KD-aware ranking: every proxy against *distillation* ground truth.

The 32 ResNet-CIFAR students of ``../shared/data/kd/diswot_resnet_c100_dev.csv`` (DisWOT's
own measurements: CIFAR-100 top-1 after KD from ResNet-56, and trained alone), teacher
``resnet56`` randomly initialised from its own seed stream, one class-interleaved batch of
real CIFAR-10 test images (``cifar10_test_1000.npz``).

Labels: the students and the teacher of the ground truth have 100 classes and our images
have 10. The networks are built with 100-way classifiers (as in the ground truth) and the
CIFAR-10 labels 0–9 index the first 10 of them; the other 90 classes simply never occur
in the batch. ``--classes 10`` measures the alternative (10-way heads) as a variant.

For each proxy and each seed: Kendall τ / Spearman ρ vs ``kd_acc``, ``vanilla_acc`` and the
KD gain ``kd_acc − vanilla_acc``; then mean ± sd over seeds. The **budgeted pick**: for
parameter budgets at the 25th/50th/75th percentile of the students' sizes, each method's
top pick among the students within the budget, its KD accuracy, and the regret against the
best student within the budget. DisWOT variants (init, terms, batch size, class count,
seed coupling) answer why searchkd's DisWOT ranks as it does here.

The ``kd`` score is evaluated like any proxy; nothing here is fitted on these students.
Usage (1 thread, ~10 min on this CPU):

    python benchmarks/kd_ranking.py --seeds 0,1,2 --out benchmarks/out/kd_ranking.json
    python benchmarks/kd_ranking.py --noise --out benchmarks/out/kd_noise.json   # the noise floor alone

The **noise floor** (:func:`noise_floor`) says how finely one training run per student can
rank them: a budgeted-pick regret below about 2σ√2 cannot tell two methods apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import CIFAR1K, OUT, RUNS, SHARED, machine, rank_stats, read_csv, write_json  # noqa: E402

KD_CSV = SHARED / "kd" / "diswot_resnet_c100_dev.csv"
PROXIES = ["kd", "diswot", "diswot_reference", "diswot_semantic", "diswot_relation", "capacity_gap", "synflow",
           "snip", "grad_norm", "grasp", "fisher", "jacob_cov", "nwot", "zen", "meco", "zico", "params", "flops"]
#: DisWOT variants: (label, config overrides, batch size, class count, shared teacher/student
#: seed, common re-init draws). "Common draws": the student's N(0,1) re-initialisation starts
#: from the same RNG state for every student, as searchkd's Scorer runs every proxy.
DISWOT_VARIANTS: list[tuple[str, dict[str, Any], int, int, bool, bool]] = [
    ("default (means, default init), B64, 100 cls", {}, 64, 100, False, True),
    ("reference init N(0,1)", {"init": "normal"}, 64, 100, False, True),
    ("reference semantic norm (÷K·C)", {"semantic_norm": "reference"}, 64, 100, False, True),
    ("reference (N(0,1), ÷K·C) = diswot_reference", {"init": "normal", "semantic_norm": "reference"}, 64, 100, False,
     True),
    ("reference, independent re-init draws per student", {"init": "normal", "semantic_norm": "reference"}, 64, 100,
     False, False),
    ("semantic term only", {"relation_weight": 0.0}, 64, 100, False, True),
    ("relation term only", {"semantic_weight": 0.0}, 64, 100, False, True),
    ("semantic class form (K×K)", {"semantic_form": "class"}, 64, 100, False, True),
    ("10-class heads", {}, 64, 10, False, True),
    ("10-class heads, reference init N(0,1)", {"init": "normal"}, 64, 10, False, True),
    ("10-class heads, reference (N(0,1), ÷K·C)", {"init": "normal", "semantic_norm": "reference"}, 64, 10, False, True),
    ("10-class heads, semantic term only", {"relation_weight": 0.0}, 64, 10, False, True),
    ("batch 32", {}, 32, 100, False, True),
    ("batch 128", {}, 128, 100, False, True),
    ("teacher shares the student seed (old)", {}, 64, 100, True, True),
]


def score_all(archs: list[str], proxies: list[str], seed: int, batch_size: int, classes: int) -> dict[str, list[float]]:
    """Scores of every arch under ``proxies`` (searchkd's Scorer, as `bench correlation` runs it)."""
    import torch

    from searchkd.data import load_images
    from searchkd.proxies import Scorer
    from searchkd.seeds import teacher_seed
    from searchkd.spaces import get_space
    from searchkd.teachers import build_teacher

    space = get_space("resnet_cifar")
    batch = load_images(f"npz:{CIFAR1K}").batch(batch_size, seed=seed)
    torch.manual_seed(teacher_seed(seed))
    teacher = build_teacher("resnet56", num_classes=classes)
    scorer = Scorer(proxies, batch, teacher=teacher, seed=seed)
    out: dict[str, list[float]] = {p: [] for p in proxies}
    t0 = time.perf_counter()
    for a in archs:
        s = scorer.score_arch(space, a)["scores"]
        for p in proxies:
            out[p].append(s[p])
    out["_seconds_per_arch"] = {p: scorer.seconds.get(p, 0.0) / len(archs) for p in proxies}  # type: ignore[assignment]
    print(f"  seed {seed}, {classes} classes, batch {batch_size}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def diswot_variant(archs: list[str], overrides: dict[str, Any], seed: int, batch_size: int, classes: int,
                   shared_seed: bool, common_draws: bool) -> list[float]:
    import torch

    from searchkd.data import load_images
    from searchkd.proxies import diswot
    from searchkd.seeds import teacher_seed
    from searchkd.spaces import get_space
    from searchkd.teachers import build_teacher

    space = get_space("resnet_cifar")
    batch = load_images(f"npz:{CIFAR1K}").batch(batch_size, seed=seed)
    cfg = diswot.with_config(**overrides)
    tseed = seed if shared_seed else teacher_seed(seed)
    torch.manual_seed(tseed)
    teacher = build_teacher("resnet56", num_classes=classes)
    torch.manual_seed(tseed)
    state = diswot.prepare(teacher, batch, cfg)
    out = []
    for a in archs:
        torch.manual_seed(seed)
        net = space.build(a, classes)
        if common_draws:
            torch.manual_seed(seed)
        parts = diswot.score(net, batch, state)
        out.append(cfg.semantic_weight * parts["semantic"] + cfg.relation_weight * parts["relation"])
    return out


def stats_over_seeds(per_seed: list[list[float]], truth: dict[str, list[float]]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for col, y in truth.items():
        taus = [rank_stats(s, y)["kendall"] for s in per_seed]
        rhos = [rank_stats(s, y)["spearman"] for s in per_seed]
        res[col] = {"kendall": statistics.fmean(taus), "kendall_sd": statistics.pstdev(taus),
                    "spearman": statistics.fmean(rhos), "spearman_sd": statistics.pstdev(rhos), "kendall_seeds": taus}
    return res


def budgeted_regret(scores: list[float], kd: list[float], params: list[float], budget: float) -> dict[str, Any]:
    """KD accuracy of the top-scored student within ``budget`` params, and its regret."""
    inside = [i for i, p in enumerate(params) if p <= budget]
    s = np.array([scores[i] if scores[i] is not None and np.isfinite(scores[i]) else -np.inf for i in inside])
    pick = inside[int(np.argmax(s))]
    best = max(kd[i] for i in inside)
    return {"pick_kd_acc": kd[pick], "best_kd_acc": best, "regret": best - kd[pick], "n_within": len(inside)}


def noise_floor(archs: list[str], kd: list[float], van: list[float], params: list[float], flops: list[float],
                budgets: dict[str, float]) -> dict[str, Any]:
    """How finely the ground truth can tell students apart: one training run per student and
    column, so a difference of a few tenths may be run-to-run noise.

    Residuals of ``kd_acc`` and of ``vanilla_acc`` about the same smooth size model (least
    squares on 1, log P, (log P)², log FLOPs). A residual is an architecture effect (shared by
    the KD and the alone run of a student, which train the same network) plus the run's own
    noise (independent between the two runs), so with equal spreads their correlation r
    estimates the architecture's share and ``sd·√(1−r)`` the run noise σ. (Four fitted
    parameters on 32 points: the sds are corrected for them.) Per budget: params' regret in
    units of the sd of a difference of two runs, σ√2, and how many students within the budget
    lie within 2σ√2 of the best (indistinguishable from it at about 95 %)."""
    lp, lf = np.log(params), np.log(flops)
    x = np.column_stack([np.ones_like(lp), lp, lp ** 2, lf])
    res = {}
    for name, y in (("kd_acc", np.asarray(kd)), ("vanilla_acc", np.asarray(van))):
        w = np.linalg.lstsq(x, y, rcond=None)[0]
        res[name] = y - x @ w
    dof = len(kd) - x.shape[1]
    sd = {k: float(np.sqrt((r ** 2).sum() / dof)) for k, r in res.items()}
    r = float(np.corrcoef(res["kd_acc"], res["vanilla_acc"])[0, 1])
    sigma = sd["kd_acc"] * float(np.sqrt(max(0.0, 1.0 - r)))
    per_budget = {}
    for name, b in budgets.items():
        inside = [i for i, p in enumerate(params) if p <= b]
        best = max(inside, key=lambda i: kd[i])
        pick = max(inside, key=lambda i: params[i])
        per_budget[name] = {
            "budget_params_m": b, "best": archs[best], "best_kd_acc": kd[best], "params_pick": archs[pick],
            "params_regret": kd[best] - kd[pick], "params_regret_in_diff_sd": (kd[best] - kd[pick]) / (sigma * np.sqrt(2)),
            "n_within": len(inside),
            "indistinguishable_from_best": sorted(archs[i] for i in inside if kd[best] - kd[i] < 2 * sigma * np.sqrt(2))}
    return {"model": "least squares on 1, log P, (log P)^2, log FLOPs", "dof": dof, "residual_sd": sd,
            "residual_corr_kd_vanilla": r, "run_noise_sd": sigma, "budgets": per_budget}


#: zero-cost proxies ``kd`` may take, and the weight grids searched on NB201
ZC_CANDIDATES = ["snip", "grad_norm", "fisher", "synflow", "zico"]
W_ZC_GRID = [round(0.05 * i, 2) for i in range(0, 41)]
W_DISWOT_GRID = [round(0.05 * i, 2) for i in range(0, 21)]


def fit_nb201(scores_csv: Path, column: str = "cifar10_test_acc") -> dict[str, Any]:
    """``kd``'s weights by grid search for the best Kendall τ on NB201 cells (never the KD students).

    ``scores_csv`` is the per-cell table ``searchkd bench correlation`` writes beside its JSON,
    with the ``params``, ``diswot`` and candidate zero-cost columns (teacher ``nb201-best``).
    """
    from searchkd.proxies.kd import KDConfig, kd_score

    rows = read_csv(scores_csv)
    y = [float(r[column]) for r in rows]
    teacher_params = 1.0  # a constant: the size term's offset does not change a ranking

    def tau(cfg: KDConfig) -> float:
        s = [kd_score({"params": float(r["params"]), "teacher_params": teacher_params, "zc": float(r[cfg.zc]),
                       "diswot": float(r["diswot"])}, cfg) for r in rows]
        return rank_stats(s, y)["kendall"]

    per_zc: dict[str, Any] = {}
    for zc in ZC_CANDIDATES:
        if zc not in rows[0]:
            continue
        grid = [(tau(KDConfig(zc, wz, wd)), wz, wd) for wz in W_ZC_GRID for wd in W_DISWOT_GRID]
        best = max(grid)
        per_zc[zc] = {"kendall": best[0], "w_zc": best[1], "w_diswot": best[2],
                      "kendall_zc_only": max(g for g in grid if g[2] == 0.0)[0],
                      "kendall_params_only": tau(KDConfig(zc, 0.0, 0.0))}
        print(f"  fit {zc:10s} τ {best[0]:.3f} at w_zc {best[1]}, w_diswot {best[2]}", flush=True)
    chosen = max(per_zc, key=lambda z: per_zc[z]["kendall"])
    return {"cells": len(rows), "column": column, "scores_csv": scores_csv.name, "candidates": per_zc,
            "grid": {"w_zc": W_ZC_GRID, "w_diswot": W_DISWOT_GRID},
            "chosen": {"zc": chosen, "w_zc": per_zc[chosen]["w_zc"], "w_diswot": per_zc[chosen]["w_diswot"]}}


CV_W_ZC = [round(0.1 * i, 1) for i in range(0, 21)]
CV_W_DISWOT = [round(0.1 * i, 1) for i in range(0, 11)]
CV_W_FLOPS = [round(0.1 * i, 1) for i in range(0, 11)]


def _features(scores: dict[str, list[float]], zc: str) -> np.ndarray:
    """4×n: log params, log flops, log zc, log DisWOT distance (non-finite → a huge negative/positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.array([np.log(scores["params"]), np.log(scores["flops"]),
                      np.log(np.asarray(scores[zc], float)), np.log(-np.asarray(scores["diswot"], float))])
    f[2][~np.isfinite(f[2])] = -1e6  # a failed zero-cost proxy ranks worst
    f[3][~np.isfinite(f[3])] = 1e6
    return f


def _grid_scores(feat: np.ndarray) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """kd scores of every (w_zc, w_diswot, w_flops) of the CV grid: (configs × n)."""
    w = np.array([(z, d, f) for z in CV_W_ZC for d in CV_W_DISWOT for f in CV_W_FLOPS])
    scores = feat[0][None] + w[:, 2:3] * feat[1][None] + w[:, 0:1] * feat[2][None] - w[:, 1:2] * feat[3][None]
    return scores, [tuple(x) for x in w]


def cv_fit(scores: dict[int, dict[str, list[float]]], kd: list[float], repeats: int = 20, folds: int = 4,
           seed: int = 0) -> dict[str, Any]:
    """``kd``'s weights fitted on folds of the KD students, judged on the held-out fold.

    Repeated ``folds``-fold cross-validation: on each training part, the zero-cost proxy and
    the (w_zc, w_diswot, w_flops) grid point with the best mean Kendall τ over the proxy
    seeds; on the held-out part, that model's τ and the size ranking's τ, same students.
    The grid includes all-zero weights (size alone), so the model can fall back to size.
    """
    from searchkd.bench.stats import _kendall_b

    y = np.asarray(kd)
    seeds = sorted(scores)
    zcs = [z for z in ZC_CANDIDATES if z in scores[seeds[0]]]
    grids = {z: [_grid_scores(_features(scores[s], z)) for s in seeds] for z in zcs}
    configs = grids[zcs[0]][0][1]
    rng = np.random.default_rng(seed)
    held, held_params, chosen = [], [], []
    for _ in range(repeats):
        perm = rng.permutation(len(y))
        for k in range(folds):
            test = np.sort(perm[k::folds])
            train = np.setdiff1d(np.arange(len(y)), test)
            best = None
            for z in zcs:
                t = np.mean([_kendall_b(g[0][:, train], y[train]) for g in grids[z]], 0)
                i = int(np.argmax(t))  # the first maximum: the smallest weights in grid order
                if best is None or t[i] > best[0]:
                    best = (t[i], z, i)
            _, z, i = best
            held.append(float(np.mean([_kendall_b(g[0][i:i + 1, test], y[test])[0] for g in grids[z]])))
            held_params.append(float(_kendall_b(np.log(np.asarray(scores[seeds[0]]["params"]))[None, test], y[test])[0]))
            chosen.append((z, *configs[i]))
    best_all = None
    for z in zcs:
        t = np.mean([_kendall_b(g[0], y) for g in grids[z]], 0)
        i = int(np.argmax(t))
        if best_all is None or t[i] > best_all[0]:
            best_all = (float(t[i]), z, i)
    from collections import Counter

    wz, wd, wf = configs[best_all[2]]
    return {"repeats": repeats, "folds": folds, "held_out_kendall": statistics.fmean(held),
            "held_out_kendall_sd": statistics.pstdev(held), "held_out_kendall_params": statistics.fmean(held_params),
            "held_out_wins": sum(a > b for a, b in zip(held, held_params)),
            "held_out_ties": sum(a == b for a, b in zip(held, held_params)), "held_out_folds": len(held),
            "chosen_in_folds": Counter(f"{c[0]} w_zc={c[1]} w_diswot={c[2]} w_flops={c[3]}" for c in chosen).most_common(8),
            "fit_all": {"zc": best_all[1], "w_zc": wz, "w_diswot": wd, "w_flops": wf, "kendall_in_sample": best_all[0]},
            "grid": {"zc": zcs, "w_zc": CV_W_ZC, "w_diswot": CV_W_DISWOT, "w_flops": CV_W_FLOPS}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--classes", type=int, default=100, choices=(10, 100),
                    help="classifier width of teacher and students (100 as in the ground truth)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--no-variants", action="store_true", help="skip the DisWOT variant table")
    ap.add_argument("--fit", type=Path, metavar="SCORES_CSV",
                    help="fit kd's weights on NB201 from this `bench correlation` scores table and stop")
    ap.add_argument("--nb201-fit", type=Path, default=OUT / "kd_fit_nb201_weights.json",
                    help="the --fit result to evaluate on the KD students")
    ap.add_argument("--noise", action="store_true",
                    help="only the ground truth's noise floor (no scoring; seconds), to --out")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.fit is not None:
        write_json(a.out or RUNS / "kd_fit_nb201_weights.json", {"benchmark": "kd_fit_nb201", **fit_nb201(a.fit)})
        return 0
    a.out = a.out or RUNS / "kd_ranking.json"
    import torch

    torch.set_num_threads(a.threads)
    rows = read_csv(KD_CSV)
    archs = [r["arch"] for r in rows]
    kd = [float(r["kd_acc"]) for r in rows]
    van = [float(r["vanilla_acc"]) for r in rows]
    truth = {"kd_acc": kd, "vanilla_acc": van, "kd_gain": [k - v for k, v in zip(kd, van)]}
    seeds = [int(s) for s in a.seeds.split(",")]
    proxies = a.proxies.split(",")

    from searchkd.spaces import get_space

    space = get_space("resnet_cifar")
    params = [space.cost(x, num_classes=100)["params"] for x in archs]
    budgets = {f"p{q}": float(np.percentile(params, q)) for q in (25, 50, 75)}
    noise = noise_floor(archs, kd, van, params, [space.cost(x, num_classes=100)["flops"] for x in archs], budgets)
    print(f"ground-truth noise: residual sd kd {noise['residual_sd']['kd_acc']:.3f}, corr(kd, vanilla residuals) "
          f"{noise['residual_corr_kd_vanilla']:.3f}, run noise σ ≈ {noise['run_noise_sd']:.3f}", flush=True)
    for name, v in noise["budgets"].items():
        print(f"  {name}: best {v['best']} {v['best_kd_acc']:.2f}; params picks {v['params_pick']} (regret "
              f"{v['params_regret']:.2f} = {v['params_regret_in_diff_sd']:.2f} σ√2); within 2σ√2 of the best: "
              f"{len(v['indistinguishable_from_best'])} of {v['n_within']}", flush=True)
    if a.noise:
        write_json(a.out or RUNS / "kd_noise.json", {"benchmark": "kd_noise", "n": len(archs), "noise_floor": noise,
                                                    "machine": machine()})
        return 0
    scores = {s: score_all(archs, proxies, s, a.batch_size, a.classes) for s in seeds}
    table: dict[str, Any] = {}
    for p in proxies:
        table[p] = stats_over_seeds([scores[s][p] for s in seeds], truth)
        table[p]["seconds_per_arch"] = statistics.fmean(scores[s]["_seconds_per_arch"][p] for s in seeds)
        print(f"{p:18s} τ kd {table[p]['kd_acc']['kendall']:.3f} ± {table[p]['kd_acc']['kendall_sd']:.3f}  "
              f"vanilla {table[p]['vanilla_acc']['kendall']:.3f}  gain {table[p]['kd_gain']['kendall']:.3f}", flush=True)

    picks: dict[str, Any] = {}
    for p in proxies:
        picks[p] = {}
        for name, b in budgets.items():
            per = [budgeted_regret(scores[s][p], kd, params, b) for s in seeds]
            picks[p][name] = {"budget_params_m": b, "regret": statistics.fmean(x["regret"] for x in per),
                              "regret_seeds": [x["regret"] for x in per],
                              "pick_kd_acc_seeds": [x["pick_kd_acc"] for x in per],
                              "best_kd_acc": per[0]["best_kd_acc"], "n_within": per[0]["n_within"]}

    variants: dict[str, Any] = {}
    if not a.no_variants:
        for label, over, bs, cls, shared, common in DISWOT_VARIANTS:
            per = [diswot_variant(archs, over, s, bs, cls, shared, common) for s in seeds]
            variants[label] = {"config": over, "batch_size": bs, "classes": cls, "shared_seed": shared,
                               "common_draws": common,
                               **stats_over_seeds(per, truth)}
            print(f"  diswot {label:42s} τ kd {variants[label]['kd_acc']['kendall']:.3f}", flush=True)

    # kd's two fits: on NB201 (--fit; evaluated here on the 32) and on folds of the 32 (held-out folds)
    kd_fits: dict[str, Any] = {}
    need = {"params", "flops", "diswot", *ZC_CANDIDATES}
    if need <= set(proxies):
        kd_fits["cv"] = cv_fit({s: scores[s] for s in seeds}, kd)
        cv = kd_fits["cv"]
        print(f"kd, cross-validated on folds of the {len(kd)}: held-out τ {cv['held_out_kendall']:.3f} vs params "
              f"{cv['held_out_kendall_params']:.3f} (wins {cv['held_out_wins']}/{cv['held_out_folds']}); "
              f"fit on all: {cv['fit_all']}", flush=True)
        nb_fit = a.nb201_fit if a.nb201_fit.is_file() else None
        if nb_fit is not None:
            import json

            from searchkd.proxies.kd import KDConfig, kd_score

            ch = json.loads(nb_fit.read_text())["chosen"]
            cfg = KDConfig(ch["zc"], ch["w_zc"], ch["w_diswot"])
            per = [[kd_score({"params": scores[s]["params"][i], "teacher_params": 1.0, "zc": scores[s][cfg.zc][i],
                              "diswot": scores[s]["diswot"][i]}, cfg) for i in range(len(archs))] for s in seeds]
            kd_fits["nb201"] = {"fit": ch, "file": nb_fit.name, **stats_over_seeds(per, truth)}
            print(f"kd fitted on NB201 {ch}: τ kd {kd_fits['nb201']['kd_acc']['kendall']:.3f}", flush=True)

    top = {p: archs[int(np.argmax(np.mean([np.nan_to_num(np.asarray(scores[s][p], float), nan=-np.inf,
                                                                     neginf=-1e300) for s in seeds], 0)))]
           for p in proxies}
    write_json(a.out, {
        "benchmark": "kd_ranking", "ground_truth": str(KD_CSV.relative_to(SHARED.parent.parent)), "n": len(archs),
        "teacher": "resnet56 (random init, teacher seed stream)", "data": CIFAR1K.name, "batch_size": a.batch_size,
        "classes": a.classes, "labels": ("CIFAR-10 labels 0-9 index the first 10 of the 100-way classifiers"
                                         if a.classes == 100 else "10-way classifiers, CIFAR-10 labels"),
        "seeds": seeds, "proxies": table, "budgeted_pick": picks, "noise_floor": noise, "diswot_variants": variants,
        "kd_fits": kd_fits,        "top_pick_mean_score": top, "archs": archs,
        "scores": {str(s): {p: scores[s][p] for p in proxies} for s in seeds}, "best_kd_student": archs[int(np.argmax(kd))], "machine": machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
