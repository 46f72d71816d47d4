"""Distill-and-verify: train the search's picks and random controls with KD from a trained
teacher, and report whether the proxy's ranking held up (``DIR/verify.json`` + ``verify.png``).
"""

from __future__ import annotations

import json
import re
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from searchkd.distill.losses import parse_feature_losses
from searchkd.distill.report import plot_verify, verdict
from searchkd.distill.select import IMAGE_SPACES, fill_scores, pick_students, proxy_name, read_result
from searchkd.distill.split import SPLIT_KEYS, proxy_batch, split_data
from searchkd.errors import SearchKDError
from searchkd.io import write_json
from searchkd.seeds import arch_seed, teacher_seed

__all__ = ["run_distill", "prepare_teacher"]

def _slug(arch: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", arch).strip("_")[:40]
    return f"{s}-{zlib.crc32(arch.encode()):08x}"


def _state_crc(model: Any) -> str:
    crc = 0
    for k, v in model.state_dict().items():
        crc = zlib.crc32(k.encode(), crc)
        crc = zlib.crc32(v.detach().cpu().contiguous().numpy().tobytes(), crc)
    return f"{crc:08x}"


def _classes_in(path: Path) -> int | None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None  # load_weights reports the unreadable file
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    w = state.get("classifier.weight") if isinstance(state, dict) else None
    return int(w.shape[0]) if w is not None and getattr(w, "ndim", 0) == 2 else None


def _teacher(out_dir: Path, spec: str | None, space_name: str, num_classes: int, *, weights: str | None,
             train_epochs: int | None, data_meta: dict[str, Any], train_set: Any, held: Any, tcfg: dict[str, Any],
             resume: bool, progress: Any, device: Any) -> tuple[Any, dict[str, Any]]:
    import torch

    from searchkd.distill.train import TrainConfig, evaluate, train_model
    from searchkd.spaces import get_space
    from searchkd.teachers import build_teacher, load_weights, resolve_teacher

    ts = resolve_teacher(spec, space_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tcfg["seed"])
        model = build_teacher(ts, num_classes=num_classes)
    info: dict[str, Any] = {"spec": spec or get_space(space_name).default_teacher, "space": ts.space, "arch": ts.arch}
    saved = out_dir / "teacher.pt"
    meta = {"space": ts.space, "arch": ts.arch, "num_classes": num_classes, **data_meta,
            "epochs": train_epochs, "batch_size": tcfg["batch_size"], "lr": tcfg["lr"], "seed": tcfg["seed"],
            "warmup": TrainConfig(epochs=1).warmup}  # a teacher trained on another recipe is not reused

    def load(path: Path, source: str) -> None:
        classes = _classes_in(path)
        if classes is not None and classes != num_classes:
            raise SearchKDError(f"teacher weights {path} have {classes} classes but the data has {num_classes}")
        load_weights(model, path)
        info.update(weights=str(path), source=source)

    if weights is not None:
        load(Path(weights), "weights")
    elif train_epochs is not None:
        if not (isinstance(train_epochs, int) and train_epochs > 0):
            raise SearchKDError(f"teacher epochs must be a positive integer, got {train_epochs!r}")
        if saved.is_file() and _saved_meta(saved) == meta:
            load(saved, "teacher.pt (reused)")
        else:
            cfg = TrainConfig(epochs=train_epochs, batch_size=tcfg["batch_size"], lr=tcfg["lr"], seed=tcfg["seed"])
            key = zlib.crc32(json.dumps(meta, sort_keys=True).encode())
            rec = train_model(model, train_set, config=cfg, ckpt_dir=out_dir / "distill" / f"_teacher-{key:08x}",
                              resume=resume,
                              meta=meta, progress=progress, label=f"teacher {ts.arch}")
            torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": json.dumps(meta)}, saved)
            info.update(weights=str(saved), source="trained", train_seconds=rec["seconds"],
                        images_per_s=rec["images_per_s"])
        info["trained_epochs"] = train_epochs
    elif saved.is_file():
        # Without an epoch count it cannot be retrained here: a teacher trained on other
        # images than this split's train part (another seed or fraction) may have seen the
        # held-out ones, so it is refused rather than measured on its own training images.
        got = _saved_meta(saved) or {}
        want = {"arch": ts.arch, "num_classes": num_classes, **{k: data_meta[k] for k in SPLIT_KEYS}}
        wrong = "; ".join(f"{k} {got.get(k)!r} there, {v!r} here" for k, v in want.items() if got.get(k) != v)
        if wrong:
            raise SearchKDError(f"{saved} was not trained for this teacher and train/held-out split ({wrong}); "
                                "pass train_teacher (--train-teacher EPOCHS) to retrain it on this split")
        load(saved, "teacher.pt")
        info["trained_epochs"] = got.get("epochs")
    else:
        raise SearchKDError("the teacher must be trained before distilling from it: give teacher weights "
                            "(--teacher-weights PATH) or train it first (--train-teacher EPOCHS)")
    # Given weights carry no record of the images they were trained on: unchecked.
    info["split_checked"] = info["source"] != "weights"
    model.to(device)
    info["accuracy"] = evaluate(model, held)
    info["params"] = sum(p.numel() for p in model.parameters()) / 1e6
    info["n_train"] = data_meta["n_train"]
    info["state_crc"] = _state_crc(model)
    return model, info


def _saved_meta(path: Path) -> dict[str, Any] | None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return json.loads(state["meta"])
    except Exception:
        return None


@dataclass
class _Context:
    """The data of one verification, as tensors on the training device."""

    out_dir: Path
    data: str
    num_classes: int
    meta: dict[str, Any]
    train: Any
    held: Any
    device: Any

    @classmethod
    def load(cls, out_dir: Path, config: dict[str, Any], data: str, held_out: float, seed: int,
             device: Any) -> "_Context":
        from searchkd.distill.train import Images

        batch = proxy_batch(config, data)
        train_set, held, moved = split_data(data, held_out, seed, batch)
        if int(held.y.max()) >= train_set.num_classes:
            raise SearchKDError(f"{data}: the held-out images have labels beyond the {train_set.num_classes} training classes")
        crc = zlib.crc32(held.y.astype("int64").tobytes(), zlib.crc32(held.x.tobytes()))
        meta = {"data": data, "held_out": held_out if data.partition(":")[0] not in ("cifar10", "cifar100") else None,
                "split_seed": seed, "n_train": len(train_set), "n_held_out": len(held), "held_out_crc": f"{crc:08x}",
                "proxy_batch": None if batch is None else {"batch_size": batch[0], "seed": batch[1],
                                                           "moved_out_of_held_out": moved}}
        return cls(out_dir, data, train_set.num_classes, meta, Images.from_set(train_set, device),
                   Images.from_set(held, device), device)


def _teacher_for(ctx: _Context, config: dict[str, Any], space_name: str, *, teacher: str | None,
                 teacher_weights: str | Path | None, train_teacher: int | None, batch_size: int, lr: float,
                 seed: int, resume: bool, progress: Any) -> tuple[Any, dict[str, Any]]:
    if isinstance(train_teacher, bool):
        raise SearchKDError("train_teacher is a number of epochs")
    if teacher_weights is not None and train_teacher is not None:
        raise SearchKDError("give teacher weights or a number of teacher epochs to train, not both")
    if teacher_weights is not None:
        weights: str | None = str(teacher_weights)
    elif train_teacher is not None or (ctx.out_dir / "teacher.pt").is_file():
        weights = None
    else:  # the weights the search itself scored with, if any
        weights = config.get("teacher_weights")
    return _teacher(ctx.out_dir, teacher if teacher is not None else config.get("teacher"), space_name,
                    ctx.num_classes, weights=weights, train_epochs=train_teacher, data_meta=ctx.meta,
                    train_set=ctx.train, held=ctx.held,
                    tcfg={"batch_size": batch_size, "lr": lr, "seed": teacher_seed(seed)},
                    resume=resume, progress=progress, device=ctx.device)


def prepare_teacher(result_path: str | Path, *, data: str | None = None, teacher: str | None = None,
                    teacher_weights: str | Path | None = None, train_teacher: int | None = None,
                    batch_size: int = 128, lr: float = 0.1, seed: int = 0, device: str | None = "auto",
                    resume: bool = False, progress: Any = None, held_out: float = 0.2) -> dict[str, Any]:
    """Only the teacher step of :func:`run_distill`: train (or load) the teacher and measure it.

    A later ``run_distill`` with the same data, held-out fraction, teacher, ``train_teacher``,
    batch size, lr and seed reuses ``DIR/teacher.pt``. Returns the ``teacher`` entry of
    ``verify.json``.
    """
    import torch

    from searchkd.devices import resolve_device
    from searchkd.spaces import get_space

    result_path = Path(result_path)
    result, _ = read_result(result_path)
    out_dir = (result_path if result_path.is_dir() else result_path.parent).resolve()
    config = result["config"]
    get_space(str(config["space"]))
    ctx = _Context.load(out_dir, config, data or config.get("data") or "embedded", held_out, seed,
                        torch.device(resolve_device(device)))
    return _teacher_for(ctx, config, str(config["space"]), teacher=teacher, teacher_weights=teacher_weights,
                        train_teacher=train_teacher, batch_size=batch_size, lr=lr, seed=seed, resume=resume,
                        progress=progress)[1]


def run_distill(result_path: str | Path, *, top: int = 4, controls: int = 4, epochs: int = 30,
                data: str | None = None, teacher: str | None = None, teacher_weights: str | Path | None = None,
                train_teacher: int | None = None, baseline: bool = True, kd_weight: float = 0.9,
                temperature: float = 4.0, feature_losses: Sequence[str] | Mapping[str, float] | str = (),
                batch_size: int = 128, lr: float = 0.1, seed: int = 0, device: str | None = "auto",
                resume: bool = False, progress: Any = None, vanilla_best: str | None = None,
                include: Sequence[str] = (), held_out: float = 0.2, proxy: str | None = None,
                plot: bool = True) -> dict[str, Any]:
    """Distil the search's top students and random controls from a trained teacher; report
    whether the proxy's ranking predicts KD accuracy.

    Writes ``verify.json`` (and ``verify.png``) beside ``result_path``, checkpoints under
    ``DIR/distill/``, and a trained teacher as ``DIR/teacher.pt``.

    Args:
        result_path: a search's ``result.json`` (or its folder); ``trials.jsonl`` beside it
            gives the proxy score of every evaluated architecture.
        top: how many of the best-scored students (or of the Pareto set, for a
            multi-objective search) to train.
        controls: how many seeded random students of the same space to train as controls.
        epochs: training epochs per student.
        data: a ``--data`` spec; default the search's data. CIFAR trains on its train
            batches and tests on its test batches; other forms are split seeded, with
            ``held_out`` of the images kept for the accuracy (:mod:`~searchkd.distill.split`). When it is
            the search's data, the images the proxies scored on are kept out of the
            held-out part (``config.proxy_batch`` of the report says how many were moved).
        teacher: a teacher spec; default the search's teacher (or the space's default).
        teacher_weights: a trained teacher's state dict (loaded with ``weights_only=True``).
            Whether it was trained on this run's held-out images cannot be checked: the
            report's ``teacher.split_checked`` is then false, and a note says so.
        train_teacher: train the teacher this many epochs first (saved as ``DIR/teacher.pt``
            with the split it was trained on, and reused while the settings and the split
            match; retrained otherwise). With neither, ``DIR/teacher.pt`` (refused when it was
            trained on another split) or the search's ``teacher_weights`` (unchecked) are
            used; with none of these, an error.
        baseline: also train each student without the teacher (cross-entropy only), which
            the KD gain needs; on by default, as in the CLI (``--no-baseline``).
        kd_weight, temperature: the KD loss ``(1−w)·CE + w·T²·KL``; Hinton et al. (2015).
        feature_losses: ``sp`` (Tung & Mori 2019) and/or ``ickd`` (Liu et al. 2021), as names,
            ``"sp=3000,ickd=2.5"`` or a name → weight mapping.
        batch_size, lr: SGD settings (momentum 0.9 Nesterov, weight decay 5e-4, cosine).
        seed: seeds the data split, the teacher, the controls and each student, each from
            its own stream (:mod:`searchkd.seeds`: ``stream_seed(seed, "split")``,
            ``teacher_seed(seed)``, ``arch_seed(seed, arch)``).
        device: ``auto``, ``cpu`` or ``cuda``.
        resume: continue killed runs from their epoch checkpoints; reuse finished ones.
        progress: True / None (a line per epoch on a TTY) / False / a per-epoch callable.
        vanilla_best, include: extra architectures to train (roles ``vanilla-best``, ``include``).
        proxy: the score to rank by; default the search's proxy.
        plot: write ``verify.png`` (needs matplotlib; skipped without it).

    Returns:
        The report written to ``verify.json``.

    Raises:
        SearchKDError: a missing or foreign result, top larger than the trials, a teacher
            whose classes differ from the data, weights that do not fit, a ``teacher.pt``
            of another split without ``train_teacher``, bad settings.
    """
    import torch

    from searchkd._version import __version__
    from searchkd.distill.train import TrainConfig, train_model
    from searchkd.devices import resolve_device
    from searchkd.spaces import get_space

    t_start = time.perf_counter()
    TrainConfig(epochs=1, batch_size=2, lr=lr, kd_weight=kd_weight, temperature=temperature)  # checks them now
    for name, v in (("epochs", epochs), ("top", top), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise SearchKDError(f"{name} must be a positive integer, got {v!r}")
    if not 0.0 < held_out < 1.0:
        raise SearchKDError(f"held-out fraction must be in (0, 1), got {held_out}")
    feats = parse_feature_losses(feature_losses)
    result_path = Path(result_path)
    result, trials = read_result(result_path)
    out_dir = (result_path if result_path.is_dir() else result_path.parent).resolve()
    config = result["config"]
    space_name = str(config["space"])
    space = get_space(space_name)
    if space_name not in IMAGE_SPACES:
        raise SearchKDError(f"distill trains image classifiers ({', '.join(IMAGE_SPACES)}); "
                            f"the result is from space {space_name!r}")
    proxy = proxy_name(config, trials, proxy)
    students, how = pick_students(result, trials, space, proxy, top=top, controls=controls, seed=seed,
                                  vanilla_best=vanilla_best, include=include)
    dev = torch.device(resolve_device(device))
    notes: list[str] = []
    note = fill_scores(students, space, config, proxy, device=str(dev))
    if note:
        notes.append(note)

    data = data or config.get("data") or "embedded"
    ctx = _Context.load(out_dir, config, data, held_out, seed, dev)
    teacher_net, t_info = _teacher_for(ctx, config, space_name, teacher=teacher, teacher_weights=teacher_weights,
                                       train_teacher=train_teacher, batch_size=batch_size, lr=lr, seed=seed,
                                       resume=resume, progress=progress)
    num_classes, data_meta, train_t, held_t = ctx.num_classes, ctx.meta, ctx.train, ctx.held
    if not t_info["split_checked"]:
        notes.append(f"the teacher's weights ({t_info['weights']}) were given: whether it was trained on the "
                     "held-out images cannot be checked")
    chance = 100.0 / num_classes
    if t_info["accuracy"] < 1.5 * chance:
        notes.append(f"the teacher's held-out accuracy ({t_info['accuracy']:.1f}%) is near chance ({chance:.1f}%): "
                     "train it longer before trusting this verification")
        # said now, before the students train (the CLI shows it as one `searchkd: warning:` line)
        warnings.warn(notes[-1], UserWarning, stacklevel=2)

    report: dict[str, Any] = {
        "searchkd_version": __version__,
        "result": str(result_path),
        "config": {"space": space_name, "proxy": proxy, "selection": how, "top": top, "controls": controls,
                   "epochs": epochs, "data": data, "held_out": data_meta["held_out"], "n_train": len(train_t),
                   "n_held_out": len(held_t), "held_out_crc": data_meta["held_out_crc"],
                   "proxy_batch": data_meta["proxy_batch"], "num_classes": num_classes, "kd_weight": kd_weight,
                   "temperature": temperature, "feature_losses": feats, "batch_size": batch_size, "lr": lr,
                   "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "linear warm-up, then cosine per step",
                   "augmentation": "random crop (4-pixel zero padding) + horizontal flip",
                   "baseline": baseline, "seed": seed, "device": str(dev),
                   "precision": "bf16 autocast, channels_last" if dev.type == "cuda" else "fp32"},
        "teacher": t_info, "students": [], "verdict": None, "notes": notes, "complete": False,
    }
    verify_json = out_dir / "verify.json"
    for k, st in enumerate(students):
        cost = space.cost(st.arch)
        row: dict[str, Any] = {"arch": st.arch, "role": st.role, "rank": st.rank, "score": st.score,
                               "score_source": st.score_source if st.score is not None else "none",
                               "params": cost["params"], "flops": cost["flops"]}
        s_seed = arch_seed(seed, st.arch)
        modes = [("kd", teacher_net)] + ([("vanilla", None)] if baseline else [])
        for mode, t_net in modes:
            cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, temperature=temperature,
                              kd_weight=kd_weight, feature_losses=tuple(feats.items()) if t_net is not None else (),
                              seed=s_seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s_seed)
                net = space.build(st.arch, num_classes=num_classes)
            meta = {"arch": st.arch, "mode": mode, **data_meta,
                    "teacher": t_info["state_crc"] if t_net is not None else None}
            # Settings are part of the folder name, so runs with other settings never collide.
            key = zlib.crc32(json.dumps([meta, cfg.to_dict()], sort_keys=True).encode())
            rec = train_model(net, train_t, config=cfg, teacher=t_net, held_out=held_t,
                              ckpt_dir=out_dir / "distill" / _slug(st.arch) / f"{mode}-{key:08x}", resume=resume, meta=meta,
                              progress=progress, label=f"[{k + 1}/{len(students)}] {st.arch} {mode}")
            row[f"{mode}_accuracy"] = rec["accuracy"]
            row[f"{mode}_seconds"] = rec["seconds"]
            row[f"{mode}_images_per_s"] = rec["images_per_s"]
        row["epochs"] = epochs
        row["seconds"] = row["kd_seconds"] + row.get("vanilla_seconds", 0.0)
        if baseline:
            row["kd_gain"] = row["kd_accuracy"] - row["vanilla_accuracy"]
        report["students"].append(row)
        report["verdict"] = verdict(report["students"])
        write_json(verify_json, report, allow_nan=False)  # a partial report survives a kill
    report["verdict"] = verdict(report["students"])
    vanilla = [r["vanilla_accuracy"] for r in report["students"] if r.get("vanilla_accuracy") is not None]
    if vanilla and t_info["accuracy"] < max(vanilla):
        notes.append(f"the teacher ({t_info['accuracy']:.1f}%) is weaker than the best student trained without it "
                     f"({max(vanilla):.1f}%): KD gains here say more about the teacher than the students")
    report["complete"] = True
    report["seconds"] = time.perf_counter() - t_start
    if plot and not plot_verify(report, out_dir / "verify.png"):
        report["notes"].append("matplotlib is not installed: verify.png was not written")
    write_json(verify_json, report, allow_nan=False)
    return report
