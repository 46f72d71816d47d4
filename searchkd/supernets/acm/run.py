"""``searchkd acm``: convert a BERT-family model's FFN blocks (``--convert ffn``, the default),
its attention projections (``attention``) or both (``all``) into Adaptive Computation Modules
(:mod:`searchkd.supernets.acm.model`) by the three distillation stages
(:mod:`searchkd.supernets.acm.train`), one conversion per target budget, and measure each on
held-out text against the dense model.

Stages 1 and 2 are shared by every budget; stage 3 (end-to-end, with the budget penalty) runs
once per budget, as in the paper, from the stage-2 weights (with ``calibrate_before_stage3``
shifted onto the budget first, :func:`~searchkd.supernets.acm.train.calibrate_budget`). The
dense model's module outputs are cached for ``cache_tokens`` real tokens, which stages 1 and 2
train on, and ``cache_tokens // 8`` more, on which ``acm.json``'s ``stage2`` block measures the
gates (:func:`~searchkd.supernets.acm.train.stage2_report`). ``OUT/`` holds ``acm.json``,
``acm.png``, ``model-b{budget}/`` (a converted model per budget, :func:`load_acm` reopens it)
and ``stages/`` (the stage checkpoints a rerun resumes from).

Measured per budget on the held-out rows: FLOPs per real token of the ACMs as they ran (learners
and gates, summed over layers) and that as a fraction of the dense FFNs; the distillation loss
(MSE of the final hidden states against the dense model's); the mean cosine of those hidden
states (real tokens) and of the mean-pooled sentence embeddings; the wall-time ratio ACM /
dense (the whole encoder, same batches, best of 3); the distribution of k per layer; and the
static baseline at the same compute: every FFN cut to the same fraction of its units (those of
largest ‖w_in‖·‖w_out‖) and every converted attention projection replaced by its truncated SVD
of the same fraction of its FLOPs, without retraining.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from searchkd.errors import SearchKDError
from searchkd.supernets.acm.settings import (CALIBRATE_BEFORE_STAGE3, LEGACY, ROUTING, STAGE2_LOSS, check_routing,
                                             check_stage2_loss)

__all__ = ["ACMRunConfig", "run_acm", "check_acm_config", "truncate_ffn", "truncate_converted", "run_batches",
           "source_id"]


CALIBRATION_TOLERANCE = 0.01  # a converted model within this much of its budget is left as stage 3 made it


@dataclass(frozen=True)
class ACMRunConfig:
    """One ``searchkd acm`` run."""

    model: str = "minilm-l6"
    out: str = "runs/acm"
    learners: int = 4
    budgets: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    data: str = "embedded-text"
    seed: int = 0
    device: str = "auto"
    stage1_steps: int = 300
    stage2_steps: int = 200
    stage3_steps: int = 100
    batch_size: int = 8
    eval_batch_size: int = 32
    calibrate: bool = True  # after stage 3, shift the gates onto the budget (acm_train.calibrate_budget)
    task: str | None = None  # a labelled task (acm_task): stage 3's loss and the accuracy measured
    task_steps: int = 200  # fine-tuning steps of the dense model and its classifier on the task
    convert: str = "ffn"  # what becomes ACMs: "ffn", "attention" (Q/K/V/O projections) or "all"
    stage2_loss: str = STAGE2_LOSS  # stage 2's gate loss: "nll" (the authors') or "ce" (acm_train)
    calibrate_before_stage3: bool = CALIBRATE_BEFORE_STAGE3  # shift the gates onto each budget before its stage 3 too
    routing: str = ROUTING  # how the converted model's gates pick k at inference (settings.ROUTINGS)
    extra: dict[str, Any] = field(default_factory=dict)


def check_acm_config(c: ACMRunConfig) -> None:
    """Bad input found without loading anything: one line, before anything is written."""
    from searchkd.data.text import TEXT_DATA_FORMS, is_text_data
    from searchkd.io import check_out_writable

    from searchkd.supernets.acm.model import CONVERT

    if not isinstance(c.learners, int) or c.learners < 2:
        raise SearchKDError(f"--learners must be at least 2, got {c.learners!r}")
    if c.convert not in CONVERT:
        raise SearchKDError(f"--convert must be one of {', '.join(CONVERT)}, got {c.convert!r}")
    check_stage2_loss(c.stage2_loss)
    check_routing(c.routing)
    if not c.budgets:
        raise SearchKDError("--budgets needs at least one budget in (0, 1]")
    for b in c.budgets:
        if not (isinstance(b, (int, float)) and 0 < b <= 1):
            raise SearchKDError(f"--budgets: {b!r} is outside (0, 1]")
    if min(c.stage1_steps, c.stage2_steps, c.stage3_steps) < 0 or min(c.batch_size, c.eval_batch_size) < 1:
        raise SearchKDError("stage steps must be >= 0 and batch sizes >= 1")
    if c.task is not None:
        from searchkd.data.text_tasks import load_task

        load_task(c.task)  # an unknown name or a bad CSV: one line, before any work
        if isinstance(c.task_steps, bool) or not isinstance(c.task_steps, int) or c.task_steps < 1:
            raise SearchKDError(f"--task-steps must be a positive integer, got {c.task_steps!r}")
    if not is_text_data(c.data):
        raise SearchKDError(f"acm needs text data ({TEXT_DATA_FORMS}), got {c.data!r}")
    check_out_writable(c.out, directory=True)


def _task_batch(c: ACMRunConfig) -> int:
    """The batch the dense model is tuned on with ``--task``."""
    return max(c.batch_size, 16)


def source_id(base_id: str, c: ACMRunConfig) -> str:
    """The id of the model converted, which every stage checkpoint's key holds: ``base_id``, and
    with a task what tuned it (task, steps; the batch where it is not 16, the batch of every run
    before it was named, so that their checkpoints resume)."""
    if c.task is None:
        return base_id
    batch = _task_batch(c)
    return f"{base_id}+task:{c.task}:{c.task_steps}" + (f":batch{batch}" if batch != 16 else "")


def _model_dir(out: Path, budget: float) -> Path:
    """``OUT/model-b{budget}``, the budget written as a float (``model-b1.0``, ``model-b0.25``):
    ``{:g}`` wrote ``model-b1`` for 1.0."""
    return out / f"model-b{float(budget)!r}"


def truncate_ffn(model: Any, fraction: float) -> Any:
    """A copy of ``model`` whose every FFN keeps ``round(fraction × units)`` of its units (at
    least one): those of largest ‖w_in‖·‖w_out‖, the ACM learners' ranking."""
    import torch
    import torch.nn as nn

    from searchkd.supernets.acm.model import ffn_layers

    small = copy.deepcopy(model)
    for layer in ffn_layers(small):
        inter, out = layer.intermediate.dense, layer.output.dense
        keep = max(1, min(inter.out_features, round(fraction * inter.out_features)))
        units = torch.argsort(inter.weight.norm(dim=1) * out.weight.norm(dim=0), descending=True)[:keep]
        a = nn.Linear(inter.in_features, keep, bias=inter.bias is not None)
        b = nn.Linear(keep, out.out_features, bias=out.bias is not None)
        with torch.no_grad():
            a.weight.copy_(inter.weight[units])
            b.weight.copy_(out.weight[:, units])
            if inter.bias is not None:
                a.bias.copy_(inter.bias[units])
            if out.bias is not None:
                b.bias.copy_(out.bias)
        layer.intermediate.dense, layer.output.dense = a, b
    return small.eval()


def truncate_converted(model: Any, fraction: float, convert: str) -> Any:
    """The static cut of :func:`run_acm`'s baseline for what ``convert`` names: every FFN cut
    by :func:`truncate_ffn`, every Q/K/V/O projection d_in → d_out replaced by its truncated SVD
    of rank round(fraction · d_in·d_out / (d_in + d_out)) (at least 1: that fraction of its
    FLOPs), kept dense at fraction 1."""
    import torch
    import torch.nn as nn

    from searchkd.supernets.acm.model import attention_linears

    small = truncate_ffn(model, fraction) if convert in ("ffn", "all") else copy.deepcopy(model).eval()
    if convert == "ffn" or fraction >= 1:
        return small
    for layer in attention_linears(small):
        for parent, name in layer:
            lin = getattr(parent, name)
            d_in, d_out = lin.in_features, lin.out_features
            rank = max(1, min(d_in, d_out, round(fraction * d_in * d_out / (d_in + d_out))))
            u, sv, vh = torch.linalg.svd(lin.weight.detach().double(), full_matrices=False)
            a = nn.Linear(d_in, rank, bias=False)
            b = nn.Linear(rank, d_out, bias=lin.bias is not None)
            with torch.no_grad():
                a.weight.copy_(vh[:rank] * sv[:rank, None])
                b.weight.copy_(u[:, :rank])
                if lin.bias is not None:
                    b.bias.copy_(lin.bias)
            low = nn.Sequential(a, b)
            low.in_features, low.out_features = d_in, d_out  # read by models that call F.linear at other sizes
            setattr(parent, name, low)
    return small.eval()


def _evaluate(model: Any, dense_out: list[Any], batches: list[tuple[Any, Any]], acm: bool) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from searchkd.supernets.acm.model import acm_modules, count_flops, reset_flops, set_token_mask
    from searchkd.supernets.acm.train import hidden_loss
    from searchkd.teachers.text import mean_pool

    loss = cos_h = cos_e = 0.0
    n_tok = n_seq = 0
    hist: list[Any] = []
    if acm:
        reset_flops(model)
        hist = [torch.zeros(m.learners + 1, dtype=torch.long) for m in acm_modules(model)]
    with torch.no_grad():
        for (ids, mask), ref in zip(batches, dense_out):
            if acm:
                with set_token_mask(model, mask):
                    out = model(input_ids=ids, attention_mask=mask).last_hidden_state
                for h, m in zip(hist, acm_modules(model)):
                    h += torch.bincount(m.last_k[mask.bool()].flatten().cpu(), minlength=len(h))
            else:
                out = model(input_ids=ids, attention_mask=mask).last_hidden_state
            real = int(mask.sum())
            loss += float(hidden_loss(out, ref, mask)) * real
            cos_h += float((F.cosine_similarity(out, ref, dim=-1) * mask).sum())
            cos_e += float(F.cosine_similarity(mean_pool(out, mask), mean_pool(ref, mask), dim=-1).sum())
            n_tok, n_seq = n_tok + real, n_seq + len(ids)
    row = {"distill_loss": loss / n_tok, "hidden_cosine": cos_h / n_tok, "embedding_cosine": cos_e / n_seq}
    if acm:
        row.update(count_flops(model))
        row["k_distribution"] = [[int(v) for v in h] for h in hist]
        row["max_k_share"] = [float(h.max() / h.sum().clamp_min(1)) for h in hist]  # adaptivity: 1.0 = one k for all
        row["mean_k"] = [float((h * torch.arange(len(h))).sum() / h.sum().clamp_min(1)) for h in hist]
    return row


def run_batches(model: Any, batches: list[tuple[Any, Any]], acm: bool) -> float:
    """Seconds for one pass of ``model`` over ``batches`` (no grad; an ACM model knows the real tokens)."""
    import torch

    from searchkd.supernets.acm.model import set_token_mask

    t0 = time.perf_counter()
    with torch.no_grad():
        for ids, mask in batches:
            if acm:
                with set_token_mask(model, mask):
                    model(input_ids=ids, attention_mask=mask)
            else:
                model(input_ids=ids, attention_mask=mask)
    return time.perf_counter() - t0


def _wall(model: Any, batches: list[tuple[Any, Any]], acm: bool) -> float:
    return min(run_batches(model, batches, acm) for _ in range(3))


def _check_existing(out: Path, budgets: Sequence[float], base_id: str, made: dict[str, Any]) -> None:
    """A converted model already in ``out`` is reused only when it was made from exactly these
    settings (``made``: the stage settings, the training data's fingerprint, calibration on or
    off); otherwise one line, before any work, as ``search --resume`` refuses a changed config."""
    from searchkd.io import read_json
    from searchkd.supernets.acm.io import load_acm

    for b in budgets:
        d = _model_dir(out, b)
        if not d.exists():
            continue
        load_acm(d, base_id=base_id)  # corrupt or another base model: one line, before any work
        saved = read_json(d / "acm.json")
        had = {k: saved.get(k, LEGACY.get(k)) for k in made}  # a setting saved before it was recorded: LEGACY
        if isinstance(had.get("config"), dict):
            had["config"] = {**{k: v for k, v in LEGACY.items() if k in made["config"]}, **had["config"]}
        diff = _differences(had, made)
        if diff:
            raise SearchKDError(f"{d} was converted with other settings ({'; '.join(diff[:4])}): rerun with those, "
                                f"use another --out, or remove {d} to convert it again")


def _differences(had: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """``key: old, now new`` for every setting that differs (a nested ``config`` key by key)."""
    out = []
    for k, v in want.items():
        old = had.get(k)
        if isinstance(v, dict) and isinstance(old, dict):
            out += [f"{kk.replace('_', '-')} {old.get(kk)!r}, now {vv!r}" for kk, vv in v.items() if old.get(kk) != vv]
        elif old != v:
            out.append(f"{k} {'not recorded' if old is None else repr(old)}, now {v!r}")
    return out


def run_acm(c: ACMRunConfig, progress: bool | None = None) -> dict[str, Any]:
    """Run ``searchkd acm``; returns what ``acm.json`` holds."""
    import torch

    from searchkd._version import __version__
    from searchkd.devices import resolve_device
    from searchkd.data.text import text_split
    from searchkd.teachers.text import text_teacher as _teacher
    from searchkd.io import write_json
    from searchkd.supernets.acm.model import acm_modules, acmize, attention_linears, ffn_layers
    from searchkd.supernets.acm.io import load_acm, save_acm
    from searchkd.supernets.acm.stage3 import TaskRows
    from searchkd.supernets.acm.train import (HELD_OUT, ACMConfig, cache_modules, calibrate_budget, calibrate_logits,
                                              data_id, split_cache, stage1, stage2, stage2_report, stage3, stage_meta)
    from searchkd.teachers import resolve_teacher
    from searchkd.teachers.text import teacher_dir

    check_acm_config(c)
    t_start = time.perf_counter()
    device = resolve_device(c.device)
    teacher = _teacher(c.model, None, device)
    dense = teacher.model.eval()
    ffn_layers(dense)
    if c.convert != "ffn":
        attention_linears(dense)  # a model without BERT's projections: one line, before any work
    ac = ACMConfig(learners=c.learners, stage1_steps=c.stage1_steps, stage2_steps=c.stage2_steps,
                   stage3_steps=c.stage3_steps, batch_size=c.batch_size, seed=c.seed, convert=c.convert,
                   stage2_loss=c.stage2_loss)
    task = _tune_on_task(c, teacher, dense) if c.task is not None else None
    if task is not None:
        dense = task["dense"]
    train, held = text_split(c.data, teacher, c.seed)
    if len(train) < c.batch_size:
        raise SearchKDError(f"{train.name}: {len(train)} training rows, fewer than --batch-size {c.batch_size}")
    out = Path(c.out)
    base_id = teacher.info.id
    ids, mask = train.tensors(range(len(train)))
    source, data = source_id(base_id, c), data_id(ids, mask)  # what is converted, and from which text
    before_stage3 = bool(c.calibrate_before_stage3)
    meta3 = {**stage_meta(source, ac, data, "stage3"), "calibrate_before_stage3": before_stage3}
    made = {"config": asdict(ac), "data": data, "calibrate": bool(c.calibrate),
            "calibrate_before_stage3": before_stage3, "routing": c.routing, "task": c.task,
            "task_steps": c.task_steps if task is not None else None}
    _check_existing(out, c.budgets, base_id, made)
    ckpt = out / "stages"

    model = acmize(copy.deepcopy(dense), c.learners, init=ac.init, seed=c.seed, convert=c.convert).eval()
    report = None  # stage 2 on held-out tokens; from a converted folder where stages 1-2 do not run
    if not all(_model_dir(out, b).exists() for b in c.budgets):
        cached = cache_modules(dense, ids, mask, max_tokens=ac.cache_tokens + ac.cache_tokens // HELD_OUT, seed=c.seed,
                               convert=c.convert)
        cache, unseen = split_cache(cached, ac.cache_tokens)  # stages 1-2 train on the first cache_tokens alone
        stage1(model, cache, ac, meta=stage_meta(source, ac, data, "stage1"), ckpt=ckpt, progress=progress)
        stage2(model, cache, ac, meta=stage_meta(source, ac, data, "stage2"), ckpt=ckpt, progress=progress)
        report = stage2_report(model, unseen, ac.label_factor)
        del cached, cache, unseen
    base_state = {k: v.clone() for k, v in model.state_dict().items()}

    held_batches = [held.tensors(range(i, min(i + c.eval_batch_size, len(held))), device)
                    for i in range(0, len(held), c.eval_batch_size)]
    with torch.no_grad():
        dense_out = [dense(input_ids=i, attention_mask=m).last_hidden_state for i, m in held_batches]
    dense_wall = _wall(dense, held_batches, acm=False)
    tokenizer_dir = teacher_dir(resolve_teacher(c.model))

    def calibrated(budget: float) -> dict[str, Any]:
        return calibrate_budget(model, ids, mask, budget, seed=c.seed, tolerance=CALIBRATION_TOLERANCE)

    rows = []
    for b in c.budgets:
        target = _model_dir(out, b)
        head = copy.deepcopy(task["head"]) if task is not None else None
        if target.exists():
            trained, saved = load_acm(target, base_id=base_id, device=device)
            calibration, calibration_before = saved.get("calibration"), saved.get("calibration_before")
            report = report or saved.get("stage2")
            if head is not None:
                _load_head(head, target)
        else:
            model.load_state_dict(base_state)
            for a in acm_modules(model):  # inference only: stage 3 samples its gates either way
                a.routing, a.k_offset = c.routing, 0.0
            calibration_before = (calibrate_logits(model, ids, mask, float(b), seed=c.seed,  # stage 3 under the budget
                                                   tolerance=CALIBRATION_TOLERANCE) if before_stage3 else None)
            rows_of_task = TaskRows(*task["split"].train, head=head) if task is not None else None
            stage3(model, dense, ids, mask, float(b), ac, meta=meta3, ckpt=ckpt, progress=progress, task=rows_of_task)
            calibration = calibrated(float(b)) if c.calibrate else None
            save_acm(model, target, base={"id": base_id, "name": teacher.info.name}, tokenizer_dir=tokenizer_dir,
                     extra={"budget": float(b), **made, "calibration": calibration,
                            "calibration_before": calibration_before, "stage2": report})
            if head is not None:
                _save_head(head, target)
            (ckpt / f"stage3-b{b:g}.pt").unlink(missing_ok=True)  # the saved model is the resumable result
            trained = model
        trained.eval()
        row = {"budget": float(b), **_evaluate(trained, dense_out, held_batches, acm=True), "calibration": calibration,
               "calibration_before": calibration_before, "bounded": bool((calibration or {}).get("bounded", False))}
        row["wall_time_ratio"] = _wall(trained, held_batches, acm=True) / dense_wall
        static = truncate_converted(dense, min(1.0, row["fraction"]), c.convert)
        srow = _evaluate(static, dense_out, held_batches, acm=False)
        if task is not None:  # the compute on the task's own test sentences sizes the static cut it is judged against
            from searchkd.supernets.acm.model import count_flops, reset_flops
            from searchkd.supernets.acm.task import accuracy

            reset_flops(trained)
            row["task_accuracy"] = accuracy(trained, head, task["split"].test)
            row["task_fraction"] = count_flops(trained)["fraction"]
            srow["task_fraction"] = min(1.0, row["task_fraction"])
            srow["task_accuracy"] = accuracy(truncate_converted(dense, srow["task_fraction"], c.convert), task["head"],
                                             task["split"].test)
        row["static"] = {"fraction": min(1.0, row["fraction"]), **srow}
        row["model_dir"] = str(target)
        rows.append(row)
    result = {"searchkd_version": __version__, "config": {k: v for k, v in asdict(c).items() if k != "extra"},
              "base": teacher.info.as_dict(), "acm": {k: v for k, v in asdict(ac).items()},
              "held_out_rows": len(held), "dense_wall_seconds": dense_wall, "stage2": report, "rows": rows,
              "task": task["summary"] if task is not None else None,
              "seconds": time.perf_counter() - t_start}
    write_json(out / "acm.json", result)
    _plot(rows, out / "acm.png", teacher.info.name)
    return result


def _plot_k(ax: Any, rows: list[dict[str, Any]]) -> None:
    """Stacked bars: per budget and layer, the share of real held-out tokens at each k."""
    import numpy as np

    pos, labels, width = 0.0, [], 0.8
    colours = None
    for r in rows:
        dist = np.asarray(r["k_distribution"], dtype=float)
        share = dist / dist.sum(1, keepdims=True).clip(min=1)
        if colours is None:
            import matplotlib.pyplot as plt

            colours = plt.cm.viridis(np.linspace(0, 1, share.shape[1]))
        for i, layer in enumerate(share):
            bottom = 0.0
            for k, v in enumerate(layer):
                ax.bar(pos, v, width, bottom=bottom, color=colours[k],
                       label=f"k={k}" if (r is rows[0] and i == 0) else None)
                bottom += v
            labels.append((pos, f"L{i}" + (f"\nb={r['budget']:g}" if i == 0 else "")))
            pos += 1
        pos += 1
    ax.set_xticks([p for p, _ in labels], [t for _, t in labels], fontsize=6)
    ax.set_ylabel("share of real tokens")
    ax.set_title("learners per token (k), per budget and layer", fontsize=9)
    ax.legend(fontsize=7, ncol=6, loc="upper right")


def _tune_on_task(c: ACMRunConfig, teacher: Any, dense: Any) -> dict[str, Any]:
    """The dense model and a classifier fine-tuned on ``c.task`` (:mod:`searchkd.supernets.acm.task`)."""
    from searchkd.seeds import stream_seed
    from searchkd.supernets.acm.task import accuracy, finetune_classifier, load_task_split, new_head

    split = load_task_split(c.task, teacher.tokenizer, c.seed)
    tuned = copy.deepcopy(dense)
    head = new_head(int(tuned.config.hidden_size), len(split.classes), stream_seed(c.seed, "acm", 0x7A5C))
    head = head.to(next(tuned.parameters()).device)
    losses = finetune_classifier(tuned, head, split.train, steps=c.task_steps, batch_size=_task_batch(c),
                                 seed=c.seed, name="task")
    summary = {"name": split.name, "classes": list(split.classes), "n_train": len(split.train[0]),
               "n_test": len(split.test[0]), "majority_accuracy": split.majority(), "task_steps": c.task_steps,
               "final_train_loss": losses[-1] if losses else None, "dense_accuracy": accuracy(tuned, head, split.test)}
    return {"dense": tuned.eval(), "head": head.eval(), "split": split, "summary": summary}


def _save_head(head: Any, target: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(target / "task_head.safetensors"))


def _load_head(head: Any, target: Path) -> None:
    from safetensors.torch import load_file

    try:
        head.load_state_dict(load_file(str(target / "task_head.safetensors")))
    except Exception as e:  # missing or another shape
        raise SearchKDError(f"{target}: its task classifier cannot be read ({str(e).splitlines()[0] if str(e) else e!r}); "
                            f"remove {target} to convert it again") from None


def _plot(rows: list[dict[str, Any]], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from searchkd.io import atomic_path

    x = [r["fraction"] for r in rows]
    fig = plt.figure(figsize=(9, 6.4))
    top = fig.subplots(2, 2, gridspec_kw={"height_ratios": [1, 1]})
    axes = top[0]
    for ax, key, label in ((axes[0], "embedding_cosine", "sentence-embedding cosine"),
                           (axes[1], "distill_loss", "held-out distillation loss (MSE)")):
        ax.plot(x, [r[key] for r in rows], "o-", label="ACM")
        ax.plot([r["static"]["fraction"] for r in rows], [r["static"][key] for r in rows], "s--",
                label="static width (no retraining)")
        for r in rows:
            ax.annotate(f"b={r['budget']:g}", (r["fraction"], r[key]), fontsize=7)
        ax.set_xlabel("FFN compute / dense (measured)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    for ax in top[1]:
        ax.remove()
    _plot_k(fig.add_subplot(2, 1, 2), rows)
    fig.suptitle(f"ACM vs static width: {name}", fontsize=10)
    fig.tight_layout()
    tmp = atomic_path(path)
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    tmp.replace(path)
