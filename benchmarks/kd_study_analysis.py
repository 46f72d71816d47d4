"""The analysis of the distillation study (``benchmarks/kd_study.py``): pure functions of its CSV
rows (and of proxy scores), so that they are tested on planted data.

* :func:`run_noise` — the pooled run-to-run σ of one student's accuracy (replicates differ only
  by the seed), per condition and overall.
* :func:`interaction` — two-way ANOVA with replication, student × teacher on KD accuracy: is the
  students' order the same under every teacher, beyond run noise?
* :func:`rankings` — Kendall τ / Spearman ρ of each score against the mean accuracy per teacher.
* :func:`budget_regret` — the regret of each score's pick among the students within a parameter
  budget, with a 95 % bootstrap interval that resamples each student's seeds.
* :func:`teacher_choice` — for each student, the measured best teacher against the one the
  capacity-gap law picks.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

Rows = list[dict[str, Any]]


def runs_by(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """(student, teacher or "none") → accuracies over seeds, ordered by seed."""
    acc: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        acc[(r["student"], r["teacher"])].append((int(r["seed"]), float(r["accuracy"])))
    return {k: [a for _, a in sorted(v)] for k, v in acc.items()}


def complete(runs: dict[tuple[str, str], list[float]], conditions: list[str], n_seeds: int) -> list[str]:
    """The students that have ``n_seeds`` runs under every condition (the balanced design)."""
    students = sorted({s for s, _ in runs})
    return [s for s in students if all(len(runs.get((s, c), [])) >= n_seeds for c in conditions)]


def run_noise(runs: dict[tuple[str, str], list[float]]) -> dict[str, Any]:
    """Pooled within-cell σ (√ of the df-weighted mean variance) per condition and overall."""
    per: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for (_, cond), accs in runs.items():
        if len(accs) >= 2:
            per[cond].append((float(np.var(accs, ddof=1)), len(accs) - 1))

    def pooled(cells: list[tuple[float, int]]) -> dict[str, Any]:
        df = sum(d for _, d in cells)
        return {"sigma": math.sqrt(sum(v * d for v, d in cells) / df) if df else None, "df": df,
                "cells": len(cells)}

    return {"overall": pooled([c for cs in per.values() for c in cs]), **{k: pooled(v) for k, v in sorted(per.items())}}


def interaction(runs: dict[tuple[str, str], list[float]], students: list[str], teachers: list[str]) -> dict[str, Any]:
    """Two-way ANOVA with replication (students × teachers, n seeds per cell, balanced).

    F = MS(interaction) / MS(within); a small p says the students' differences depend on the
    teacher beyond run noise. Also reports the share of the between-cell variance each effect
    explains, and each teacher's best student."""
    from scipy.stats import f as f_dist

    n = min(len(runs[(s, t)]) for s in students for t in teachers)
    y = np.array([[runs[(s, t)][:n] for t in teachers] for s in students], dtype=float)  # S×T×n
    s_n, t_n = y.shape[:2]
    grand = y.mean()
    cell = y.mean(axis=2)
    row = cell.mean(axis=1, keepdims=True)
    col = cell.mean(axis=0, keepdims=True)
    ss = {"student": n * t_n * float(((row - grand) ** 2).sum()),
          "teacher": n * s_n * float(((col - grand) ** 2).sum()),
          "interaction": n * float(((cell - row - col + grand) ** 2).sum()),
          "within": float(((y - cell[..., None]) ** 2).sum())}
    df = {"student": s_n - 1, "teacher": t_n - 1, "interaction": (s_n - 1) * (t_n - 1), "within": s_n * t_n * (n - 1)}
    ms = {k: ss[k] / df[k] if df[k] else float("nan") for k in ss}
    out: dict[str, Any] = {"students": s_n, "teachers": teachers, "seeds": n, "ss": ss, "df": df}
    for k in ("student", "teacher", "interaction"):
        if df["within"] == 0:  # one run a cell: no run noise to test against (not p = 0)
            out[k] = {"F": None, "p": None}
            continue
        f = ms[k] / ms["within"] if ms["within"] > 0 else float("inf")
        out[k] = {"F": f, "p": float(f_dist.sf(f, df[k], df["within"])) if math.isfinite(f) else 0.0}
    between = ss["student"] + ss["teacher"] + ss["interaction"]
    out["interaction"]["share_of_between"] = ss["interaction"] / between if between > 0 else None
    if df["within"] and ms["within"] > 0:  # what the test could have seen: power at α .05 against an
        # interaction of RMS r points per cell (noncentrality n·S·T·r² / σ²_within)
        from scipy.stats import ncf

        crit = float(f_dist.ppf(0.95, df["interaction"], df["within"]))
        out["interaction"]["power_at_rms"] = {
            f"{r:g}": float(ncf.sf(crit, df["interaction"], df["within"], n * s_n * t_n * r * r / ms["within"]))
            for r in (0.2, 0.3, 0.5)}
    out["best_per_teacher"] = {t: students[int(np.argmax(cell[:, j]))] for j, t in enumerate(teachers)}
    return out


def rankings(scores: Mapping[str, Mapping[str, float | None]], truth: Mapping[str, float]) -> dict[str, Any]:
    """τ/ρ of each score (name → student → value) against ``truth`` (student → accuracy)."""
    from searchkd.bench import rank_stats

    students = sorted(truth)
    return {name: rank_stats([vals.get(s) for s in students], [truth[s] for s in students])
            for name, vals in scores.items()}


def _pick(score: Mapping[str, float | None], allowed: list[str]) -> str:
    """The allowed student with the highest finite score (ties: the first in sorted order)."""
    finite = [s for s in allowed if score.get(s) is not None and math.isfinite(score[s])]  # type: ignore[arg-type]
    return max(finite or allowed, key=lambda s: score.get(s) if s in finite else -math.inf)  # type: ignore[return-value]


def budget_regret(scores: Mapping[str, Mapping[str, float | None]], accs: Mapping[str, list[float]],
                  params: Mapping[str, float], budgets: list[float], *, resamples: int = 2000,
                  seed: int = 0) -> dict[str, Any]:
    """Regret (points) of each score's pick within each parameter budget: best mean accuracy
    among the students within the budget minus the pick's. The 95 % interval resamples every
    student's seeds with replacement (the pick is fixed: it does not depend on the runs)."""
    rng = np.random.default_rng(seed)
    students = sorted(accs)
    a = [np.asarray(accs[s], dtype=float) for s in students]
    boot = np.array([[x[rng.integers(0, len(x), len(x))].mean() for x in a] for _ in range(resamples)])  # R×S
    mean = np.array([x.mean() for x in a])
    out: dict[str, Any] = {}
    for b in budgets:
        allowed = [s for s in students if params[s] <= b]
        idx = [students.index(s) for s in allowed]
        entry: dict[str, Any] = {"budget_m": b, "students": len(allowed),
                                 "best": allowed[int(np.argmax(mean[idx]))], "picks": {}}
        for name, score in scores.items():
            pick = _pick(score, allowed)
            j = students.index(pick)
            point = float(mean[idx].max() - mean[j])
            dist = boot[:, idx].max(axis=1) - boot[:, j]
            lo, hi = np.percentile(dist, [2.5, 97.5])
            entry["picks"][name] = {"pick": pick, "regret": point, "ci95": [float(lo), float(hi)],
                                    "ci_width": float(hi - lo)}
        out[f"{b:g}"] = entry
    return out


def teacher_choice(runs: dict[tuple[str, str], list[float]], students: list[str], teachers: list[str],
                   law_pick: Mapping[str, str], sigma: float) -> dict[str, Any]:
    """Per student: the teacher with the best mean KD accuracy, the capacity-gap law's pick, and
    whether the law's pick is within 2 standard errors of the difference of the best."""
    rows, agree, tied = [], 0, 0
    for s in students:
        means = {t: float(np.mean(runs[(s, t)])) for t in teachers}
        best = max(means, key=means.__getitem__)
        law = law_pick[s]
        n = min(len(runs[(s, t)]) for t in teachers)
        se = sigma * math.sqrt(2.0 / n)
        gap = means[best] - means[law]
        agree += best == law
        tied += gap <= 2 * se
        rows.append({"student": s, "best": best, "law": law, "gap": gap, "means": means})
    return {"students": len(students), "law_is_best": agree, "law_within_2se": tied, "rows": rows}


def seeds_available(rows: Rows, teachers: list[str], most: int = 3, min_students: int = 3) -> int:
    """The most seeds (≤ ``most``) for which at least ``min_students`` students are complete."""
    runs = runs_by(rows)
    for n in range(most, 0, -1):
        if len(complete(runs, ["none", *teachers], n)) >= min_students:
            return n
    return most


def analyse(rows: Rows, *, teachers: list[str], dev_truth: Mapping[str, Mapping[str, float]] | None = None,
            proxy_scores: Mapping[str, Mapping[str, Mapping[str, float | None]]] | None = None,
            params: Mapping[str, float] | None = None, law_pick: Mapping[str, str] | None = None,
            n_seeds: int = 3) -> dict[str, Any]:
    """Everything above from the study's rows; ``proxy_scores`` is teacher → proxy → student → score,
    ``dev_truth`` is {"kd": student → accuracy, "vanilla": student → accuracy} (DisWOT's)."""
    runs = runs_by(rows)
    conditions = ["none", *teachers]
    students = complete(runs, conditions, n_seeds)
    runs = {k: v[:n_seeds] for k, v in runs.items() if k[0] in students}
    out: dict[str, Any] = {"runs": len(rows), "complete_students": len(students), "seeds": n_seeds,
                           "noise": run_noise(runs)}
    if len(students) < 3:
        return out
    means = {c: {s: float(np.mean(runs[(s, c)])) for s in students} for c in conditions}
    out["mean_accuracy"] = means
    out["kd_gain"] = {t: float(np.mean([means[t][s] - means["none"][s] for s in students])) for t in teachers}
    out["interaction"] = interaction(runs, students, teachers)
    out["interaction_with_alone"] = interaction(runs, students, conditions)
    if dev_truth:
        dev = [s for s in students if s in dev_truth["kd"]]
        if len(dev) >= 3:
            out["transfer"] = {}
            for c in conditions:  # KD under a teacher against DisWOT's KD, alone against its alone
                truth = dev_truth["vanilla" if c == "none" else "kd"]
                out["transfer"][c] = {"n": len(dev), "against": "vanilla_acc" if c == "none" else "kd_acc",
                                      **rankings({"study": means[c]}, {s: truth[s] for s in dev})["study"]}
    if proxy_scores and params:
        sizes = sorted(params[s] for s in students)
        budgets = [float(np.percentile(sizes, q)) for q in (25, 50, 75)]
        out["budgets_m"] = budgets
        out["rankings"], out["regret"] = {}, {}
        for t in teachers:
            sc = {k: {s: v.get(s) for s in students} for k, v in proxy_scores[t].items()}
            out["rankings"][t] = rankings(sc, means[t])
            out["regret"][t] = budget_regret(sc, {s: runs[(s, t)] for s in students}, params, budgets)
    if law_pick and out["noise"]["overall"]["sigma"]:
        out["teacher_choice"] = teacher_choice(runs, students, teachers, law_pick, out["noise"]["overall"]["sigma"])
    return out


def analyse_file(csv_path: Path, out: Path, n_seeds: int | None = None) -> dict[str, Any]:  # pragma: no cover
    """Thin I/O over :func:`analyse`; ``n_seeds`` overrides :func:`seeds_available`'s choice."""
    from benchmarks.kd_study import study_inputs

    from searchkd.io import write_json

    inputs = study_inputs(csv_path)
    if n_seeds is not None:
        inputs["n_seeds"] = n_seeds
    res = analyse(**inputs)
    write_json(out, res)
    print(f"wrote {out}")
    return res


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1)
