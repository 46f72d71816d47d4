"""benchmarks/kd_study.py and its analysis: the teacher replay, resume, and the statistics on
planted data (where the right answer is known)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import kd_study  # noqa: E402
from benchmarks import kd_study_analysis as ana  # noqa: E402

TEACHERS = ["big", "small"]


def _planted(effects, sigma=0.3, seeds=3, seed=0):
    """Rows whose accuracy is the planted cell mean plus N(0, sigma²) run noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for (student, cond), mu in effects.items():
        for s in range(seeds):
            rows.append({"student": student, "teacher": cond, "seed": s, "accuracy": mu + sigma * rng.standard_normal()})
    return rows


def _additive(n=12):
    """Student quality grows with size; every teacher adds the same gain: no interaction."""
    students = [f"{i}-1-1" for i in range(1, n + 1)]
    eff = {}
    for i, s in enumerate(students):
        eff[(s, "none")] = 50 + i
        eff[(s, "big")] = 52 + i
        eff[(s, "small")] = 51 + i
    return students, eff


def test_run_noise_recovers_the_planted_sigma():
    students, eff = _additive(40)
    out = ana.run_noise(ana.runs_by(_planted(eff, sigma=0.5, seeds=3)))
    assert out["overall"]["df"] == 40 * 3 * 2
    assert out["overall"]["sigma"] == pytest.approx(0.5, rel=0.12)


def test_interaction_is_not_found_where_none_is_planted_and_found_where_it_is():
    students, eff = _additive()
    runs = ana.runs_by(_planted(eff))
    none = ana.interaction(runs, students, TEACHERS)
    assert none["interaction"]["p"] > 0.01
    assert none["student"]["p"] < 1e-6
    # the small teacher now favours the small students: the order flips under it
    flipped = {k: (v if k[1] != "small" else 60 - 2 * int(k[0].split("-")[0])) for k, v in eff.items()}
    some = ana.interaction(ana.runs_by(_planted(flipped)), students, TEACHERS)
    assert some["interaction"]["p"] < 1e-6
    assert some["best_per_teacher"] == {"big": students[-1], "small": students[0]}


def test_interaction_is_untestable_not_significant_with_one_run_a_cell():
    students, eff = _additive()
    runs = {k: v[:1] for k, v in ana.runs_by(_planted(eff)).items()}
    out = ana.interaction(runs, students, TEACHERS)
    assert out["df"]["within"] == 0
    assert out["interaction"]["p"] is None and out["student"]["F"] is None


def test_interaction_sums_of_squares_add_up_to_the_total():
    students, eff = _additive(6)
    runs = ana.runs_by(_planted(eff, sigma=1.0))
    out = ana.interaction(runs, students, TEACHERS)
    y = np.array([runs[(s, t)] for s in students for t in TEACHERS])
    assert sum(out["ss"].values()) == pytest.approx(((y - y.mean()) ** 2).sum())


def test_budget_regret_is_zero_for_the_truth_and_positive_for_an_anti_ranking():
    students, eff = _additive()
    runs = ana.runs_by(_planted(eff, sigma=0.05))
    accs = {s: runs[(s, "big")] for s in students}
    params = {s: float(i + 1) for i, s in enumerate(students)}
    truth = {s: float(np.mean(accs[s])) for s in students}
    anti = {s: -v for s, v in truth.items()}
    out = ana.budget_regret({"truth": truth, "anti": anti}, accs, params, [6.0, 12.0], resamples=200)
    assert out["6"]["students"] == 6
    assert out["6"]["picks"]["truth"]["regret"] == 0
    assert out["6"]["picks"]["anti"]["pick"] == students[0]
    assert out["6"]["picks"]["anti"]["regret"] == pytest.approx(5.0, abs=0.2)
    lo, hi = out["12"]["picks"]["anti"]["ci95"]
    assert lo <= out["12"]["picks"]["anti"]["regret"] <= hi and hi - lo < 0.3


def test_a_non_finite_score_is_never_picked():
    accs = {"a": [1.0, 1.0], "b": [2.0, 2.0]}
    out = ana.budget_regret({"p": {"a": 1.0, "b": math.nan}}, accs, {"a": 1, "b": 1}, [1.0], resamples=10)
    assert out["1"]["picks"]["p"]["pick"] == "a"


def test_analyse_uses_only_students_complete_under_every_condition():
    students, eff = _additive(5)
    rows = _planted(eff)
    rows = [r for r in rows if not (r["student"] == students[0] and r["teacher"] == "small" and r["seed"] == 2)]
    out = ana.analyse(rows, teachers=TEACHERS, law_pick={s: "big" for s in students})
    assert out["complete_students"] == 4
    assert out["kd_gain"]["big"] == pytest.approx(2.0, abs=0.5)
    assert out["teacher_choice"]["law_is_best"] == 4


def test_jobs_put_the_dev_students_first_and_cover_every_condition():
    jobs = kd_study.jobs(("t1",), (0, 1))
    assert len(jobs) == 64 * 2 * 2 == len(set(jobs))
    first = {s for s, _, _ in jobs[: 32 * 2 * 2]}
    if kd_study.DEV_CSV.is_file():
        import csv

        with open(kd_study.DEV_CSV) as f:
            assert first == {r["arch"] for r in csv.DictReader(f)}


def test_downsample_is_the_block_mean():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    y = kd_study.downsample(x, 2)
    assert y.shape == (2, 2, 2, 3)
    assert y[1, 1, 0, 2] == round(x[1, 2:4, 0:2, 2].astype(float).mean())


def test_the_replayed_teacher_trains_the_student_exactly_as_the_live_teacher(tmp_path):
    """The study's shortcut (the teacher's logits recorded once per seed) changes nothing."""
    import torch

    from searchkd.distill.train import Images, train_model
    from searchkd.spaces import get_space

    rng = np.random.default_rng(0)
    data = Images(torch.from_numpy(rng.integers(0, 255, (40, 3, 8, 8), dtype=np.uint8)),
                  torch.from_numpy(rng.integers(0, 10, 40)))
    scale = kd_study.Scale(resolution=8, images=40, epochs=2, batch_size=16)
    space = get_space("resnet_cifar")
    torch.manual_seed(1)
    teacher = space.build("1-1-2").eval()

    def student():
        torch.manual_seed(2)
        return space.build("1-1-1")

    live = student()
    train_model(live, data, config=kd_study.student_config(scale, 0), teacher=teacher, progress=False)
    tape = kd_study.Recorder(teacher)
    train_model(kd_study._Null(), data, config=kd_study.student_config(scale, 0), teacher=tape, progress=False)
    replayed = student()
    train_model(replayed, data, config=kd_study.student_config(scale, 0), teacher=kd_study.Recorder(tape=tape.tape),
                progress=False)
    for a, b in zip(live.state_dict().values(), replayed.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="differs"):  # another seed's order is refused
        train_model(student(), data, config=kd_study.student_config(scale, 1), teacher=kd_study.Recorder(tape=tape.tape),
                    progress=False)


def test_append_and_done_rows_resume(tmp_path):
    path = tmp_path / "s.csv"
    row = {"scale": "x", "student": "1-1-1", "teacher": "none", "kind": "alone", "seed": 0, "accuracy": 40.0,
           "params": 0.07, "flops": 12.0, "seconds": 3.0}
    kd_study.append_row(row, path)
    kd_study.append_row({**row, "seed": 1}, path)
    got = kd_study.done_rows(path)
    assert [r["seed"] for r in got] == ["0", "1"] and list(got[0]) == kd_study.COLUMNS


def test_transfer_compares_kd_with_kd_and_alone_with_alone():
    students, eff = _additive(6)
    rows = _planted(eff, sigma=0.01)
    up = {s: float(i) for i, s in enumerate(students)}
    out = ana.analyse(rows, teachers=TEACHERS, dev_truth={"kd": up, "vanilla": {s: -v for s, v in up.items()}})
    assert out["transfer"]["big"]["kendall"] == pytest.approx(1.0)
    assert out["transfer"]["none"]["kendall"] == pytest.approx(-1.0) and out["transfer"]["none"]["against"] == "vanilla_acc"


def test_seeds_available_falls_back_to_what_is_complete():
    students, eff = _additive(4)
    rows = [r for r in _planted(eff) if r["seed"] < 2]
    assert ana.seeds_available(rows, TEACHERS) == 2


def test_teacher_names_resolve_in_a_fresh_interpreter():
    """The study's workers import nothing else first: the teacher registry must be filled by
    the import kd_study makes (an import of ``searchkd.registry`` alone left it empty)."""
    import subprocess

    code = "from benchmarks.kd_study import teacher_arch; print(teacher_arch('resnet56'), teacher_arch('resnet20'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stderr[-400:]
    assert out.stdout.split() == ["9-9-9", "3-3-3"]


def test_interaction_power_matches_a_simulation_of_the_planted_noise():
    """power_at_rms: the chance the test finds an interaction of RMS r points per cell, checked
    against simulated studies with that interaction and the planted run noise."""
    students, eff = _additive(12)
    sigma, seeds = 0.5, 3
    out = ana.interaction(ana.runs_by(_planted(eff, sigma=sigma, seeds=seeds)), students, TEACHERS)
    power = out["interaction"]["power_at_rms"]
    assert 0.05 < power["0.2"] < power["0.3"] < power["0.5"] <= 1
    rng = np.random.default_rng(7)
    hits = 0
    for i in range(200):  # an interaction of RMS .3: ±.3 per cell, the sign flipping with the teacher
        sign = rng.choice([-1.0, 1.0], size=len(students))
        planted = {k: v + 0.3 * sign[students.index(k[0])] * (1 if k[1] == TEACHERS[0] else -1) for k, v in eff.items()}
        hits += ana.interaction(ana.runs_by(_planted(planted, sigma=sigma, seeds=seeds, seed=i + 1)), students,
                                TEACHERS)["interaction"]["p"] < 0.05
    assert hits / 200 == pytest.approx(power["0.3"], abs=0.12)
