"""A replicated, multi-teacher distillation ground truth for ResNet-CIFAR students.

Every student ``A-B-C`` (A, B, C ∈ {1, 3, 5, 7}: DisWOT's 64, the 32 of
``../shared/data/kd/diswot_resnet_c100_dev.csv`` first) is trained on CIFAR-10 *training*
images (``cifar10_train_25k.npz``) alone and by knowledge distillation from each teacher,
with several seeds, and scored on the 10,000 CIFAR-10 *test* images, which nothing trains on.
A run's seed fixes the student's initialisation, the data order and the augmentation, so
the alone and KD runs of one student and seed differ only in the teacher (paired).

The scale fits about 10 CPU-hours for the dev 32 (one run ≈ 35–200 CPU-seconds, measured
with ``pilot``): images area-downsampled to 16×16, students train on all 25,000 training
images for 4 epochs (SGD .1, cosine, crop padding 2, flip; KD T = 4, w = .9); teachers
train once on the same images for 15 epochs at seed 0 and are kept in
``benchmarks/out/kd_study/`` with their split record. At this budget (≈ 800 SGD steps) the
smallest students train best alone (pilot, seed 0: 1-1-1 57.1 %, 7-7-7 55.8 %): the study
measures a short-schedule regime, and :func:`~benchmarks.kd_study_analysis.analyse` reports
how well it transfers to DisWOT's 240-epoch CIFAR-100 ground truth. The teacher's logits depend only on the seed's data order, not on
the student, so they are recorded once per (teacher, seed) and replayed (checked against
the inputs they were made from).

Every finished run appends one row to ``benchmarks/out/kd_study.csv``; a rerun skips the
rows it finds, so the study resumes across sessions. Two workers use both cores::

    OMP_NUM_THREADS=1 PYTHONPATH=. nohup python benchmarks/kd_study.py run --worker 0/2 &
    OMP_NUM_THREADS=1 PYTHONPATH=. nohup python benchmarks/kd_study.py run --worker 1/2 &
    PYTHONPATH=. python benchmarks/kd_study.py pilot          # one run's cost at this scale
    PYTHONPATH=. python benchmarks/kd_study.py analyse        # benchmarks/out/kd_study_analysis.json
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import OUT, SHARED  # noqa: E402

TRAIN_NPZ = SHARED / "images" / "cifar10_train_25k.npz"
TEST_NPZ = SHARED / "images" / "cifar10_test_10k.npz"
DEV_CSV = SHARED / "kd" / "diswot_resnet_c100_dev.csv"
CSV_PATH = OUT / "kd_study.csv"
TEACHER_DIR = OUT / "kd_study"
CACHE = Path("runs/kd_study/cache")
COLUMNS = ["scale", "student", "teacher", "kind", "seed", "accuracy", "params", "flops", "seconds"]


@dataclass(frozen=True)
class Scale:
    """What one run costs: fixed for the whole study (its name is in every CSV row)."""

    resolution: int = 16
    images: int = 25000
    epochs: int = 4
    batch_size: int = 128
    lr: float = 0.1
    padding: int = 2
    teacher_epochs: int = 15
    teacher_seed: int = 0
    subset_seed: int = 0

    @property
    def name(self) -> str:
        return f"r{self.resolution}-n{self.images}-e{self.epochs}"

    @property
    def teacher_name(self) -> str:
        """Teachers depend only on these settings (all training images at seed ``teacher_seed``)."""
        return f"r{self.resolution}-e{self.teacher_epochs}-s{self.teacher_seed}"


SCALE = Scale()
TEACHERS = ("resnet56", "resnet20")
SEEDS = (0, 1, 2)


def students(dev_first: bool = True) -> list[str]:
    """DisWOT's 64 students, the dev 32 first (both halves in lexicographic order)."""
    every = ["-".join(map(str, b)) for b in itertools.product((1, 3, 5, 7), repeat=3)]
    if not dev_first or not DEV_CSV.is_file():
        return every
    with open(DEV_CSV) as f:
        dev = [r["arch"] for r in csv.DictReader(f)]
    return sorted(dev) + [a for a in every if a not in set(dev)]


def jobs(teachers: tuple[str, ...] = TEACHERS, seeds: tuple[int, ...] = SEEDS) -> list[tuple[str, str, int]]:
    """(student, teacher or "none", seed): the dev 32 over every seed, then the other 32, so
    that a study stopped early is a complete design over the students it has."""
    archs = students()
    halves = [archs[:32], archs[32:]]
    return [(s, t, seed) for half in halves for seed in seeds for s in half for t in ("none", *teachers)]


# ---- data -------------------------------------------------------------------------------------

def downsample(x: np.ndarray, resolution: int) -> np.ndarray:
    """Area-downsample uint8 N×H×W×3 images by an integer factor (mean of each block, rounded)."""
    n, h, w, c = x.shape
    f = h // resolution
    if f * resolution != h or w != h:
        raise ValueError(f"cannot downsample {h}×{w} to {resolution}")
    if f == 1:
        return x
    blocks = x.reshape(n, resolution, f, resolution, f, c).astype(np.float32).mean(axis=(2, 4))
    return np.rint(blocks).astype(np.uint8)


def class_balanced(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices, the same count from every class (a seeded draw), sorted."""
    classes = np.unique(y)
    rng = np.random.default_rng(seed)
    per = n // len(classes)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per] for c in classes]))


def load_sets(scale: Scale, device: str = "cpu") -> tuple[Any, Any, Any]:
    """(teacher training set, student training subset, test set) as :class:`Images`."""
    from searchkd.data.images import load_npz
    from searchkd.distill.train import Images

    for p in (TRAIN_NPZ, TEST_NPZ):
        if not p.is_file():
            sys.exit(f"kd_study: reference data {p} not found (the project's ../shared/data)")
    tr, te = (replace(s, x=downsample(s.x, scale.resolution)) for s in (load_npz(TRAIN_NPZ), load_npz(TEST_NPZ)))
    part = tr.subset(class_balanced(np.asarray(tr.y), scale.images, scale.subset_seed))
    return tuple(Images.from_set(s, device) for s in (tr, part, te))  # type: ignore[return-value]


# ---- teachers ---------------------------------------------------------------------------------

def _build(arch: str, seed: int) -> Any:
    import torch

    from searchkd.spaces import get_space

    torch.manual_seed(seed)
    return get_space("resnet_cifar").build(arch, num_classes=10)


def teacher_arch(name: str) -> str:
    from searchkd.teachers import TEACHERS as REG

    return REG.get(name).arch


def train_teacher(name: str, scale: Scale, sets: tuple[Any, Any, Any]) -> Any:
    """The teacher, trained once and kept (weights + a JSON record) in ``TEACHER_DIR``; a
    file lock makes a second worker wait for the first instead of training it twice."""
    import torch

    from searchkd.distill.train import TrainConfig, evaluate, train_model

    TEACHER_DIR.mkdir(parents=True, exist_ok=True)
    stem = TEACHER_DIR / f"{name}-{scale.teacher_name}"
    model = _build(teacher_arch(name), scale.teacher_seed)
    with open(stem.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stem.with_suffix(".pt").is_file():
            model.load_state_dict(torch.load(stem.with_suffix(".pt"), weights_only=True))
            return model.eval()
        full, _, test = sets
        cfg = TrainConfig(epochs=scale.teacher_epochs, batch_size=scale.batch_size, lr=scale.lr,
                          padding=scale.padding, seed=scale.teacher_seed)
        print(f"training teacher {name} ({len(full)} images, {cfg.epochs} epochs)", flush=True)
        res = train_model(model, full, config=cfg, held_out=test, progress=True, label=name)
        torch.save(model.state_dict(), stem.with_suffix(".pt"))
        rec = {"teacher": name, "arch": teacher_arch(name), "scale": asdict(scale), "train": cfg.to_dict(),
               "split": {"train": f"all {len(full)} images of {TRAIN_NPZ.name}", "test": TEST_NPZ.name},
               "test_accuracy": evaluate(model, test), "seconds": res["seconds"]}
        stem.with_suffix(".json").write_text(json.dumps(rec, indent=1) + "\n")
        return model.eval()


class Recorder:
    """Stands in for a teacher inside :func:`train_model`: records its logits (and a sample of
    each input batch) on the first pass, replays them afterwards. Replay refuses an input that
    differs from the recorded one, so a changed data order cannot pass silently."""

    def __init__(self, teacher: Any = None, tape: dict[str, list[Any]] | None = None) -> None:
        self.teacher, self.tape = teacher, tape if tape is not None else {"logits": [], "probe": []}
        self.i = 0

    # train_model calls .to(), .eval(), .parameters() on a teacher
    def to(self, *_: Any, **__: Any) -> "Recorder":
        return self

    def eval(self) -> "Recorder":
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def parameters(self) -> Iterator[Any]:
        return iter(self.teacher.parameters()) if self.teacher is not None else iter(())

    @staticmethod
    def _probe(x: Any) -> Any:
        return x.reshape(-1)[::997].clone()

    def forward_features(self, x: Any) -> Any:
        import torch

        if self.teacher is not None:
            self.tape["probe"].append(self._probe(x))
            return self.teacher.forward_features(x)
        if self.i >= len(self.tape["probe"]) or not torch.equal(self._probe(x), self.tape["probe"][self.i]):
            raise RuntimeError(f"teacher replay: batch {self.i} differs from the recorded one")
        return x

    def forward_head(self, f: Any) -> Any:
        if self.teacher is not None:
            out = self.teacher.forward_head(f)
            self.tape["logits"].append(out.detach().clone())
            return out
        self.i += 1
        return self.tape["logits"][self.i - 1]


class _Null:
    """A one-parameter student: lets :func:`train_model` drive the teacher through a seed's
    exact data order at no cost of its own."""

    def __new__(cls) -> Any:
        import torch
        from torch import nn

        class Null(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.b = nn.Parameter(torch.zeros(10))

            def forward(self, x: Any) -> Any:
                return self.b.expand(x.shape[0], 10)

        return Null()


def teacher_tape(name: str, teacher: Any, seed: int, scale: Scale, part: Any) -> dict[str, list[Any]]:
    """The teacher's logits over seed ``seed``'s whole training order, cached on disk."""
    import torch

    from searchkd.distill.train import train_model

    path = CACHE / f"{name}-{scale.name}-s{seed}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    rec = Recorder(teacher)
    train_model(_Null(), part, config=student_config(scale, seed), teacher=rec, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(rec.tape, tmp)
    tmp.replace(path)
    return rec.tape


def student_config(scale: Scale, seed: int) -> Any:
    from searchkd.distill.train import TrainConfig

    return TrainConfig(epochs=scale.epochs, batch_size=scale.batch_size, lr=scale.lr, padding=scale.padding,
                       seed=seed, temperature=4.0, kd_weight=0.9)


# ---- runs -------------------------------------------------------------------------------------

def done_rows(path: Path = CSV_PATH) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def append_row(row: dict[str, Any], path: Path = CSV_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if f.tell() == 0:
            f.write(",".join(COLUMNS) + "\n")
        f.write(",".join(str(row[c]) for c in COLUMNS) + "\n")
        f.flush()


def run_one(student: str, teacher: str, seed: int, scale: Scale, sets: tuple[Any, Any, Any],
            teachers: dict[str, Any]) -> dict[str, Any]:
    from searchkd.distill.train import train_model
    from searchkd.spaces import get_space

    _, part, test = sets
    t = None
    if teacher != "none":
        t = Recorder(tape=teacher_tape(teacher, teachers[teacher], seed, scale, part))
    model = _build(student, seed)
    t0 = time.process_time()
    res = train_model(model, part, config=student_config(scale, seed), teacher=t, held_out=test, progress=False)
    cost = get_space("resnet_cifar").cost(student, num_classes=10)
    return {"scale": scale.name, "student": student, "teacher": teacher, "kind": "alone" if t is None else "kd",
            "seed": seed, "accuracy": round(res["accuracy"], 2), "params": round(cost["params"], 6),
            "flops": round(cost["flops"], 3), "seconds": round(time.process_time() - t0, 1)}


def run(worker: int, workers: int, limit: int | None, scale: Scale = SCALE) -> None:
    import torch

    torch.set_num_threads(1)
    sets = load_sets(scale)
    if limit == 0:  # --teachers-only
        for name in TEACHERS:
            train_teacher(name, scale, sets)
        return
    teachers: dict[str, Any] = {}
    done = {(r["student"], r["teacher"], int(r["seed"])) for r in done_rows() if r["scale"] == scale.name}
    mine = [j for i, j in enumerate(jobs()) if i % workers == worker and j not in done]
    print(f"worker {worker}/{workers}: {len(mine)} runs to do", flush=True)
    todo = mine[:limit]
    for k in range(len(todo)):
        # a run whose teacher is ready (or that has none) first: never wait while another
        # worker trains a teacher if there is other work
        ready = [j for j in todo if j[1] == "none" or j[1] in teachers
                 or (TEACHER_DIR / f"{j[1]}-{scale.teacher_name}.pt").is_file()]
        s, t, seed = (ready or todo)[0]
        todo.remove((s, t, seed))
        if t != "none" and t not in teachers:  # trained (or waited for) when first needed
            teachers[t] = train_teacher(t, scale, sets)
        row = run_one(s, t, seed, scale, sets, teachers)
        append_row(row)
        print(f"[{k + 1}/{len(mine)}] {s} {t} seed {seed}: {row['accuracy']:.2f}% {row['seconds']:.0f}s", flush=True)


PROXIES = ("params", "flops", "kd", "diswot", "diswot_reference", "capacity_gap", "snip", "fisher", "zico", "meco",
           "synflow")
PROXY_JSON = OUT / "kd_study_proxies.json"


def proxy_scores(scale: Scale = SCALE, teachers: tuple[str, ...] = TEACHERS) -> dict[str, Any]:
    """Every proxy's score of every student against each *trained* teacher, on one
    class-interleaved batch of 64 of the students' 16-pixel training images (cached JSON)."""
    if PROXY_JSON.is_file():
        cached = json.loads(PROXY_JSON.read_text())
        if cached.get("scale") == scale.name and set(cached["scores"]) >= set(teachers):
            return cached
    import torch

    from searchkd.api import score_archs
    from searchkd.data.images import load_npz

    torch.set_num_threads(1)
    tr = load_npz(TRAIN_NPZ)
    sub = tr.subset(class_balanced(np.asarray(tr.y), scale.images, scale.subset_seed))
    npz = CACHE / f"train-{scale.name}.npz"
    npz.parent.mkdir(parents=True, exist_ok=True)
    np.savez(npz, x=downsample(sub.x, scale.resolution), y=sub.y)
    archs = students()
    scores: dict[str, Any] = {}
    for t in teachers:
        weights = TEACHER_DIR / f"{t}-{scale.teacher_name}.pt"
        if not weights.is_file():
            sys.exit(f"kd_study: teacher {weights} not trained yet (run the study first)")
        rows = score_archs("resnet_cifar", archs, list(PROXIES), teacher=t, teacher_weights=str(weights),
                           data=f"npz:{npz}", batch_size=64, seed=0, device="cpu", progress=False)
        scores[t] = {p: {r["arch"]: r[p] for r in rows} for p in PROXIES}
    out = {"scale": scale.name, "data": f"a class-interleaved batch of 64 of the {scale.images} training images, "
           f"{scale.resolution}px", "seed": 0, "scores": scores}
    from searchkd.io import write_json

    write_json(PROXY_JSON, out)
    return out


def study_inputs(csv_path: Path = CSV_PATH, scale: Scale = SCALE) -> dict[str, Any]:
    """The arguments of :func:`benchmarks.kd_study_analysis.analyse` for this study."""
    from benchmarks.kd_study_analysis import seeds_available
    from searchkd.proxies.capacity_gap import pick_teacher
    from searchkd.spaces import get_space

    rows = [r for r in done_rows(csv_path) if r["scale"] == scale.name]
    with open(DEV_CSV) as f:
        table = list(csv.DictReader(f))
    dev = {k: {r["arch"]: float(r[f"{k}_acc"]) for r in table} for k in ("kd", "vanilla")}
    space = get_space("resnet_cifar")
    archs = students()
    teachers = [t for t in TEACHERS if (TEACHER_DIR / f"{t}-{scale.teacher_name}.pt").is_file()]
    return {"rows": rows, "teachers": teachers, "dev_truth": dev,
            "proxy_scores": proxy_scores(scale, tuple(teachers))["scores"] if teachers else None,
            "params": {a: space.cost(a)["params"] for a in archs},
            "law_pick": {a: pick_teacher(a, list(teachers), space="resnet_cifar").teacher for a in archs},
            "n_seeds": seeds_available(rows, teachers, len(SEEDS))}


def verify(max_params: float, budget: int, seeds: tuple[int, ...] = SEEDS, teacher: str = "resnet56",
           scale: Scale = SCALE, out: Path = OUT / "kd_study_verify.json") -> dict[str, Any]:
    """A searched student end to end: ``searchkd.search`` with the default image proxy under
    ``max_params`` over the whole ``resnet_cifar`` space (729 students), then the pick, the
    largest student within the budget and a seeded random one within it, each distilled from
    ``teacher`` at the study's scale over ``seeds`` (rows go to the study's CSV too)."""
    import torch

    import searchkd
    from searchkd.api import default_proxy
    from searchkd.io import write_json
    from searchkd.spaces import get_space

    torch.set_num_threads(1)
    proxy = default_proxy("resnet_cifar", "evolution")
    res = searchkd.search(space="resnet_cifar", proxy=proxy, strategy="evolution", budget=budget, seed=0,
                          teacher=teacher, max_params=max_params)
    space = get_space("resnet_cifar")
    every = ["-".join(map(str, b)) for b in itertools.product(range(1, 10), repeat=3)]
    within = sorted((a for a in every if space.cost(a)["params"] <= max_params), key=lambda a: space.cost(a)["params"])
    rng = np.random.default_rng(0)
    picks = {"search": res.best.arch, "largest": within[-1], "random": str(rng.choice(within))}
    sets = load_sets(scale)
    teachers = {teacher: train_teacher(teacher, scale, sets)}
    done = {(r["student"], r["teacher"], int(r["seed"])): float(r["accuracy"]) for r in done_rows()
            if r["scale"] == scale.name}
    rows: dict[str, Any] = {}
    for role, arch in picks.items():
        accs = []
        for seed in seeds:
            if (arch, teacher, seed) not in done:
                row = run_one(arch, teacher, seed, scale, sets, teachers)
                append_row(row)
                done[(arch, teacher, seed)] = row["accuracy"]
                print(f"{role} {arch} seed {seed}: {row['accuracy']:.2f}%", flush=True)
            accs.append(done[(arch, teacher, seed)])
        rows[role] = {"arch": arch, "params": space.cost(arch)["params"], "accuracy": accs,
                      "mean": float(np.mean(accs)), "sd": float(np.std(accs, ddof=1)) if len(accs) > 1 else None}
    report = {"proxy": proxy, "teacher": teacher, "max_params": max_params, "budget": budget, "scale": asdict(scale),
              "students_within": len(within), "rows": rows}
    write_json(out, report)
    return report


def pilot(scale: Scale = SCALE, archs: list[str] | None = None) -> None:
    """One run's cost: by default the smallest, a middle and the largest student, alone, seed 0."""
    import torch

    from searchkd.io import write_json

    torch.set_num_threads(1)
    sets = load_sets(scale)
    path = OUT / "kd_study_pilot.json"
    rec = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    for s in archs or ("1-1-1", "3-3-3", "7-7-7"):
        row = run_one(s, "none", 0, scale, sets, {})
        print(json.dumps(row), flush=True)
        rec["rows"] = [r for r in rec["rows"] if (r["scale"], r["student"]) != (row["scale"], s)] + [row]
        write_json(path, rec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="do this worker's share of the runs not yet in the CSV")
    r.add_argument("--worker", default="0/1", help="i/n: this worker takes every n-th run from the i-th")
    r.add_argument("--limit", type=int, default=None, help="stop after this many runs")
    r.add_argument("--teachers-only", action="store_true", help="train the teachers and stop")
    pl = sub.add_parser("pilot", help="time three runs at the study's scale (or another)")
    pl.add_argument("--images", type=int, default=SCALE.images)
    pl.add_argument("--epochs", type=int, default=SCALE.epochs)
    pl.add_argument("--students", default="1-1-1,3-3-3,7-7-7")
    v = sub.add_parser("verify", help="search with the default proxy, then distil its pick and two controls")
    v.add_argument("--max-params", type=float, default=0.3)
    v.add_argument("--budget", type=int, default=100)
    a = sub.add_parser("analyse", help="the analysis JSON from the CSV")
    a.add_argument("--out", default=str(OUT / "kd_study_analysis.json"))
    a.add_argument("--csv", default=str(CSV_PATH))
    a.add_argument("--seeds", type=int, help="analyse the students complete over this many seeds (default: the most "
                   "seeds with at least 3 complete students)")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        i, n = (int(v) for v in args.worker.split("/"))
        run(i, n, 0 if args.teachers_only else args.limit)
    elif args.cmd == "verify":
        verify(args.max_params, args.budget)
    elif args.cmd == "pilot":
        pilot(replace(SCALE, images=args.images, epochs=args.epochs), args.students.split(","))
    else:
        from benchmarks.kd_study_analysis import analyse_file

        analyse_file(Path(args.csv), Path(args.out), args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
