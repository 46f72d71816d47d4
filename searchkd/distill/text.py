"""Distill-and-verify for BERT spaces: does the SuperLM's ranking (AutoDistil, Xu et al.,
NeurIPS 2022) hold for students trained on their own? Asked of the search's top-K and of
size-matched random controls, as :mod:`searchkd.distill.verify` asks it of image students.

Each student is a standalone encoder (:meth:`SuperLM.standalone`, the SuperLM's own training
loop) that continues the task-agnostic self-attention relation distillation (MiniLMv2) on the
search's train split, from the weights it inherits from the SuperLM (``init="inherited"``, as
AutoDistil's extracted students) or from BERT's random initialisation (``"scratch"``). It is
measured on the search's held-out split, which neither the SuperLM nor it trained on:

* the relation loss, before and after;
* the teacher agreement of sentence embeddings (mean-pooled last hidden states): the mean
  cosine between the teacher's embedding and the student's mapped to the teacher's width by
  an affine least-squares map fitted on the train split (at most :data:`MAP_ROWS` of its rows,
  a seeded subset; :func:`mapped_cosine`), and the nearest-neighbour agreement
  (:func:`nn_agreement`); the same of the last layer's input (:class:`TeacherAgreement`).

Writes ``DIR/verify.json`` (a partial one after each student) and ``DIR/verify.png``;
checkpoints go to ``DIR/distill/<arch>/<init>-<settings>/`` and a killed run resumes.
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
import zlib
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from searchkd.distill.report import rank_correlations
from searchkd.distill.select import pick_students, proxy_name, read_result
from searchkd.distill.split import check_superlm_rows, search_split_seed, supernet_dir
from searchkd.errors import SearchKDError
from searchkd.io import write_json

__all__ = ["run_text_distill", "search_split_seed", "check_superlm_rows", "mapped_cosine", "nn_agreement", "text_verdict", "is_text_result", "route",
           "summary_lines", "TeacherAgreement", "fit_rows", "supernet_dir", "INITS", "CONTROL_WIDEN", "MAP_ROWS"]

#: where a standalone student starts: the SuperLM's sliced weights, or BERT's random init
INITS = ("inherited", "scratch")
#: at most this many train rows (a seeded subset) fit the embedding map
MAP_ROWS = 4096
#: the controls' parameter range is the top students' [min, max] widened by this fraction each way
CONTROL_WIDEN = 0.10
_TEXT_OPTIONS = ("top", "controls", "steps", "init", "seed", "device", "resume", "progress", "plot")


# ---- embedding agreement ----------------------------------------------------------------------
def mapped_cosine(student_train: Any, teacher_train: Any, student_held: Any, teacher_held: Any) -> float:
    """Mean cosine between the teacher's held-out embeddings and the student's, mapped to the
    teacher's width: ``[s, 1] @ W`` with ``W`` the least-squares solution of
    ``[S_train, 1] W ≈ T_train`` (float64; the minimum-norm one when under-determined). The
    widths differ, so a map is needed; fitting it on the train rows keeps it honest."""
    def ones(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.ones((len(x), 1))], axis=1)

    s_tr, t_tr, s_h, t_h = (np.asarray(a, dtype=np.float64) for a in (student_train, teacher_train, student_held,
                                                                       teacher_held))
    w = np.linalg.lstsq(ones(s_tr), t_tr, rcond=None)[0]
    mapped = ones(s_h) @ w
    cos = (mapped * t_h).sum(1) / np.maximum(np.linalg.norm(mapped, axis=1) * np.linalg.norm(t_h, axis=1), 1e-12)
    return float(cos.mean())


def _nearest(x: np.ndarray) -> np.ndarray:
    u = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


def nn_agreement(student: Any, teacher: Any) -> float:
    """The fraction of rows whose nearest other row by cosine is the same for the student's
    embeddings as for the teacher's (each in its own space: no map needed); ties go to the
    lower index. Needs at least 3 rows."""
    s, t = np.asarray(student, dtype=np.float64), np.asarray(teacher, dtype=np.float64)
    if len(s) != len(t) or len(s) < 3:
        raise SearchKDError(f"nearest-neighbour agreement needs the same >= 3 rows, got {len(s)} and {len(t)}")
    return float((_nearest(s) == _nearest(t)).mean())


# ---- the verdict ------------------------------------------------------------------------------
def _mean(v: Sequence[float]) -> float | None:
    return float(np.mean(v)) if len(v) else None


def text_verdict(students: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How well the SuperLM's score ranked the standalone students: Kendall τ / Spearman ρ
    of ``score`` (−held-out loss inside the SuperLM) against −held-out loss after training
    (higher is better on both sides) and against the embedding cosine; whether the pick (the
    first ``top`` student) has a lower held-out loss than the mean / the best control."""
    done = [s for s in students if s.get("held_out_loss_after") is not None]
    scored = [s for s in done if s.get("score") is not None]
    out: dict[str, Any] = {
        "superlm_vs_standalone": rank_correlations([s["score"] for s in scored], [-s["held_out_loss_after"] for s in scored]),
        "superlm_vs_cosine": rank_correlations([s["score"] for s in scored], [s["embedding_cosine"] for s in scored]),
    }
    tops = [s for s in done if s["role"] == "top"]
    controls = [s for s in done if s["role"] == "control"]
    pick = tops[0] if tops else None
    ctl_loss = [s["held_out_loss_after"] for s in controls]
    losses = sorted(s["held_out_loss_after"] for s in done)
    out.update({
        "pick": pick["arch"] if pick else None,
        "pick_loss": pick["held_out_loss_after"] if pick else None,
        "pick_rank_by_loss": losses.index(pick["held_out_loss_after"]) + 1 if pick else None,
        "pick_cosine": pick["embedding_cosine"] if pick else None,
        "top_mean_loss": _mean([s["held_out_loss_after"] for s in tops]),
        "controls_mean_loss": _mean(ctl_loss),
        "controls_best_loss": min(ctl_loss) if ctl_loss else None,
        "controls_mean_cosine": _mean([s["embedding_cosine"] for s in controls]),
        "pick_beats_controls_mean": bool(pick["held_out_loss_after"] < np.mean(ctl_loss)) if pick and ctl_loss else None,
        "pick_beats_controls_best": bool(pick["held_out_loss_after"] < min(ctl_loss)) if pick and ctl_loss else None,
    })
    return out


_COLOURS = {"top": "tab:red", "control": "tab:blue"}


def plot_text_verify(report: dict[str, Any], path: str | Path) -> bool:
    """SuperLM score vs the standalone held-out loss after training (filled) and before it
    (hollow, the inherited or random start), one colour per role, each point labelled."""
    try:
        from searchkd.io import agg_figure

        fig = agg_figure(figsize=(6.4, 4.6), dpi=120)
    except ImportError:
        return False
    ax = fig.subplots()
    for role, colour in _COLOURS.items():
        rows = [s for s in report["students"] if s["role"] == role and s.get("score") is not None]
        if not rows:
            continue
        x = [s["score"] for s in rows]
        ax.scatter(x, [s["held_out_loss_after"] for s in rows], c=colour, label=f"{role} (after)", zorder=3)
        ax.scatter(x, [s["held_out_loss_before"] for s in rows], facecolors="none", edgecolors=colour,
                   label=f"{role} (before)", zorder=2)
        for s in rows:
            ax.annotate(s["arch"], (s["score"], s["held_out_loss_after"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
    c = report["verdict"]["superlm_vs_standalone"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    cfg = report["config"]
    ax.set_title(f"SuperLM score vs standalone held-out loss ({cfg['init']}, {cfg['steps']} steps): "
                 f"τ = {fmt(c['kendall_tau'])}, ρ = {fmt(c['spearman_rho'])} (n = {c['n']})", fontsize=8)
    ax.set_xlabel("superlm score (−held-out relation loss inside the SuperLM)")
    ax.set_ylabel(f"standalone held-out relation loss ({cfg['loss']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    return True


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The CLI's lines for a report: one per student, then the verdict."""
    fmt = lambda v, f=".4f": "n/a" if v is None else format(v, f)  # noqa: E731
    lines = [f"{s['role']:<8} {s['arch']:<20} superlm {fmt(s['score'])}  held-out loss {fmt(s['held_out_loss_before'])} -> "
             f"{fmt(s['held_out_loss_after'])}  cosine {fmt(s['embedding_cosine'], '.3f')}  nn {fmt(s['nn_agreement'], '.3f')}"
             f"  (last layer's input: cosine {fmt(s.get('input_cosine'), '.3f')})"
             for s in report["students"]]
    v = report["verdict"] or {}
    c = v.get("superlm_vs_standalone", {})
    if report["students"]:
        lines.append(f"superlm vs standalone loss: kendall {fmt(c.get('kendall_tau'), '.3f')} spearman "
                     f"{fmt(c.get('spearman_rho'), '.3f')} (n={c.get('n')}); pick beats controls: mean "
                     f"{v.get('pick_beats_controls_mean')} best {v.get('pick_beats_controls_best')}")
    lines += [f"note: {n}" for n in report.get("notes", [])]
    d = report.get("downstream")
    if d:
        lines.append(f"downstream {d['task']} ({d['n_train']} train / {d['n_test']} test, {d['steps']} steps, "
                     f"seeds {d['seeds']}; majority class {d['majority_accuracy']:.3f}):")
        lines += [f"  {r['role']:<18} {r['arch'] or 'teacher':<20} accuracy {r['accuracy_mean']:.3f} ± "
                  f"{r['accuracy_sd']:.3f}  params {r['params']:.2f} M ({r['param_fraction']:.0%} of the teacher)"
                  for r in d["rows"]]
        lines += [f"note: {n}" for n in d.get("notes", [])]
    return lines + [f"wrote {report['verify_json']}"]


# ---- dispatch ---------------------------------------------------------------------------------
def is_text_result(result: str | Path) -> bool:
    """Whether a search result is of a text (BERT) space; a missing or foreign file raises."""
    from searchkd.spaces import get_space

    res, _ = read_result(result)
    return getattr(get_space(str(res["config"]["space"])), "modality", None) == "text"


def route(result: str | Path, options: dict[str, Any]) -> tuple[Callable[..., dict[str, Any]], dict[str, Any]]:
    """``(function, options)`` for :func:`searchkd.api.distill`: :func:`run_text_distill` for a
    BERT space's result, with the image trainer's options dropped where they are unset or at
    their defaults (the CLI passes them all) and refused otherwise; else
    :func:`~searchkd.distill.run_distill`, which takes no ``steps``."""
    from searchkd.distill.verify import run_distill

    options = dict(options)
    task, finetune = options.pop("task", None), options.pop("finetune_steps", None)
    if not is_text_result(result):
        if options.pop("steps", None) is not None:
            raise SearchKDError("--steps is for BERT spaces; an image student trains for --epochs")
        if task is not None or finetune is not None:
            raise SearchKDError("--task and --finetune-steps are for BERT spaces (a labelled text task)")
        return run_distill, options
    if finetune is not None and task is None:
        raise SearchKDError("--finetune-steps needs --task (the labelled text task to fine-tune on)")
    if task is not None:  # the downstream block only (searchkd.distill.downstream)
        from searchkd.distill.downstream import run_downstream

        return run_downstream, {"task": task, "finetune_steps": finetune,
                                **{k: options[k] for k in ("top", "device", "progress") if k in options}}
    defaults = {k: p.default for k, p in inspect.signature(run_distill).parameters.items()}
    text = {k: options.pop(k) for k in _TEXT_OPTIONS if k in options}
    given = [k for k, v in options.items() if v is not None and v != () and v != "" and v != defaults.get(k)
             and not (k == "proxy" and v == "superlm")]
    if given:
        raise SearchKDError(f"distill of a BERT space takes no {', '.join(given)} (its options: "
                            f"{', '.join(_TEXT_OPTIONS)})")
    return run_text_distill, text


# ---- the run ----------------------------------------------------------------------------------
def _controls(space: Any, tops: Sequence[str], k: int, seed: int) -> tuple[list[str], list[float]]:
    params = [space.cost(a)["params"] for a in tops]
    lo, hi = min(params) * (1 - CONTROL_WIDEN), max(params) * (1 + CONTROL_WIDEN)
    pool = [a for a in (space.decode(v) for v in np.ndindex(*space.bounds()))
            if a not in tops and lo <= space.cost(a)["params"] <= hi]
    rng = np.random.default_rng([seed, 0xC0])
    chosen = rng.choice(len(pool), size=min(k, len(pool)), replace=False) if pool else []
    return [pool[int(i)] for i in chosen], [lo, hi]


def _embeddings(forward: Callable[[Any, Any], Any], ids: Any, mask: Any, batch_size: int,
                device: Any) -> list[np.ndarray]:
    """Mean-pooled embeddings of each hidden state that ``forward(ids, mask)`` returns (a
    sequence of B×T×H tensors), one array per state."""
    import torch

    from searchkd.teachers.text import mean_pool

    out: list[list[np.ndarray]] = []
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            b_ids, b_mask = ids[i:i + batch_size].to(device), mask[i:i + batch_size].to(device)
            states = forward(b_ids, b_mask)
            out.append([mean_pool(h.float(), b_mask).cpu().double().numpy() for h in states])
    return [np.concatenate(col) for col in zip(*out)]


def _student_states(net: Any, ids: Any, mask: Any) -> tuple[Any, Any]:
    """``(last hidden state, the last layer's input)`` of a :class:`BertNet` or of a
    transformers encoder (its ``hidden_states[-2]``)."""
    out = net(ids, attention_mask=mask) if hasattr(net, "set_active") else \
        net(ids, attention_mask=mask, output_hidden_states=True)
    if hasattr(out, "last_input"):
        return out.last_hidden_state, out.last_input
    return out.last_hidden_state, out.hidden_states[-2]


class TeacherAgreement:
    """The teacher agreement of a student's sentence embeddings: :func:`mapped_cosine` with the
    map fitted on ``fit`` and :func:`nn_agreement`, both on ``held``, of two embeddings of the
    student against the teacher's (its mean-pooled last hidden state, computed once, here):

    * ``embedding_cosine``, ``nn_agreement``: the student's mean-pooled last hidden state,
      what a user of the exported student gets;
    * ``input_cosine``, ``input_nn_agreement``: the mean-pooled input of its last layer, the
      deepest state the last-layer relation distillation trains (the last layer's attention
      output and feed-forward block receive no gradient from it and keep their random init
      until a downstream fine-tune, as in MiniLMv2 and AutoDistil).

    Args:
        teacher: a :class:`~searchkd.teachers.text.TextTeacher`.
        fit, held: ``(input_ids, attention_mask)`` of the rows that fit the map / measure.
    """

    def __init__(self, teacher: Any, fit: tuple[Any, Any], held: tuple[Any, Any], *, batch_size: int = 32,
                 device: Any = "cpu") -> None:
        self.fit, self.held, self.batch_size, self.device = fit, held, batch_size, device
        self.teacher = [_embeddings(lambda i, m: (teacher.features(i, m).hidden,), *d, batch_size, device)[0]
                        for d in (fit, held)]

    def floor(self) -> float:
        """The mapped cosine of a student whose embedding is constant: the map is then its bias
        alone, the teacher's mean fit embedding. Any student should score above it."""
        t_fit, t_held = self.teacher
        return mapped_cosine(np.zeros((len(t_fit), 1)), t_fit, np.zeros((len(t_held), 1)), t_held)

    def __call__(self, net: Any) -> dict[str, float]:
        """The four agreements of ``net``: a :class:`BertNet` (eval mode while measured) or a
        transformers encoder (anything returning ``last_hidden_state`` and ``hidden_states``)."""
        was = net.training
        net.eval()
        try:
            (fit_last, fit_in), (held_last, held_in) = (
                _embeddings(lambda i, m: _student_states(net, i, m), *d, self.batch_size, self.device)
                for d in (self.fit, self.held))
        finally:
            net.train(was)
        t_fit, t_held = self.teacher
        return {"embedding_cosine": mapped_cosine(fit_last, t_fit, held_last, t_held),
                "nn_agreement": nn_agreement(held_last, t_held),
                "input_cosine": mapped_cosine(fit_in, t_fit, held_in, t_held),
                "input_nn_agreement": nn_agreement(held_in, t_held)}


def fit_rows(train: Any, seed: int, rows: int = MAP_ROWS) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` of at most ``rows`` train rows (a seeded subset, in
    order) that fit the embedding map."""
    return train.tensors(np.sort(np.random.default_rng([seed, 0xE5]).permutation(len(train))[:rows]))


def run_text_distill(result: str | Path, *, top: int = 4, controls: int = 4, steps: int | None = None,
                     init: str = "inherited", seed: int = 0, device: str | None = None, resume: bool = False,
                     progress: bool | None = None, plot: bool = True) -> dict[str, Any]:
    """Train the top students of a BERT-space search and size-matched random controls on
    their own, and report whether the SuperLM's ranking held (see the module docstring).

    Args:
        result: a search's ``result.json`` (or its folder); its config gives the space,
            teacher, data and seed, its ``trials.jsonl`` the ``superlm`` scores, and the
            SuperLM is ``config.supernet`` or ``DIR/supernet``.
        top: the best students by the search's ``superlm`` score (its Pareto set, best first,
            for a multi-objective search).
        controls: seeded uniform picks among the space's other archs whose parameters lie
            in the top students' [min, max] widened by :data:`CONTROL_WIDEN` each way (fewer,
            with a note, when fewer exist).
        steps: distillation steps per student (default: the SuperLM's training steps); the
            rest of the recipe (batch, lr and its linear decay, loss, relation heads) is the
            SuperLM's, with a fresh optimizer.
        init: ``"inherited"`` (the SuperLM's sliced weights) or ``"scratch"``.
        seed: the controls' draw and the students' batch order and dropout (the same for
            every student, so they differ only in architecture and start). The split is the
            search's (its ``proxy_seed``, else its ``seed``: :func:`search_split_seed`), and the
            SuperLM's recorded train rows must be its train rows, so the held-out rows are
            those the SuperLM never saw.
        device: ``auto``/None, ``cpu`` or ``cuda``.
        resume: continue from the students' checkpoints (a finished one trains no more);
            without it an earlier run of the same settings is started over.
        progress: the SuperLM progress bar (None: on a terminal).
        plot: write ``verify.png``.

    Returns:
        The report written to ``DIR/verify.json``.

    Raises:
        SearchKDError: a result of another space than a BERT one, no SuperLM checkpoint,
            no ``superlm`` scores, top larger than the trials, bad settings.
    """
    import torch

    from searchkd._version import __version__
    from searchkd.distill.verify import _slug
    from searchkd.devices import resolve_device
    from searchkd.evaluate.text import _qkv, _teacher, text_split
    from searchkd.spaces import get_space
    from searchkd.supernets.superlm import SuperLM

    t_start = time.perf_counter()
    for name, v, low in (("top", top, 1), ("controls", controls, 0), ("steps", 1 if steps is None else steps, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise SearchKDError(f"{name} must be an integer >= {low}, got {v!r}")
    if init not in INITS:
        raise SearchKDError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    result_path = Path(result)
    res, trials = read_result(result_path)
    out_dir = (result_path if result_path.is_dir() else result_path.parent).resolve()
    config = res["config"]
    if getattr(get_space(str(config["space"])), "modality", None) != "text":
        raise SearchKDError(f"run_text_distill verifies BERT spaces; the result is from space {config['space']!r}")
    supernet = supernet_dir(config, out_dir)
    dev = torch.device(resolve_device(device))
    teacher = _teacher(config.get("teacher"), config.get("teacher_weights"), dev)
    qkv = _qkv(teacher)
    lm = SuperLM.load(supernet, qkv, teacher=teacher.info.id, device=dev)
    space = lm.space  # the grid and vocabulary the SuperLM was built for
    if space.name != config["space"]:
        raise SearchKDError(f"{supernet} holds a SuperLM of {space.name}, not of the search's {config['space']}")
    proxy = proxy_name(config, trials, "superlm")
    picked, how = pick_students(res, trials, space, proxy, top=top, controls=0)
    tops = [s.arch for s in picked]
    ctl, params_range = _controls(space, tops, controls, seed)
    notes = [] if len(ctl) == controls else [
        f"only {len(ctl)} of {controls} controls: the space has no more archs of {params_range[0]:.3f}-{params_range[1]:.3f} M "
        "parameters"]

    split = search_split_seed(config)
    train, held = text_split(config.get("data") or "embedded-text", teacher, split)
    train_t, held_t = train.tensors(range(len(train))), held.tensors(range(len(held)))
    check_superlm_rows(supernet, train_t)
    archs = tops + ctl
    in_lm = lm.score_many(archs, *held_t)
    steps = int(steps or lm.config.steps)
    cfg = replace(lm.config, steps=steps, seed=seed, checkpoint_every=max(1, min(100, steps // 4)))
    agreement = TeacherAgreement(teacher, fit_rows(train, seed), held_t, batch_size=cfg.batch_size, device=dev)

    report: dict[str, Any] = {
        "searchkd_version": __version__, "result": str(result_path), "kind": "text",
        "config": {"space": space.name, "teacher": teacher.info.name, "teacher_id": teacher.info.id,
                   "data": config.get("data"), "split_seed": split, "n_train": len(train),
                   "n_held_out": len(held), "supernet": str(supernet), "supernet_step": lm.step, "selection": how,
                   "top": top, "controls": controls, "control_params": params_range, "init": init, "steps": steps,
                   **{k: v for k, v in asdict(cfg).items() if k not in ("steps", "checkpoint_every")},
                   "device": str(dev), "embedding": "mean-pooled last hidden state; the student's mapped to the "
                   "teacher's width by an affine least-squares map fitted on the train split"},
        "teacher": {"name": teacher.info.name, "id": teacher.info.id, "params": teacher.info.params / 1e6},
        "students": [], "verdict": None, "notes": notes, "complete": False,
        "verify_json": str(out_dir / "verify.json"),
    }
    verify_json = out_dir / "verify.json"
    search_scores = {s.arch: s.score for s in picked}
    for k, (arch, loss_in_lm) in enumerate(zip(archs, in_lm)):
        st = SuperLM.standalone(space, arch, qkv, teacher=teacher.info.id, config=cfg,
                                init=lm.extract(arch) if init == "inherited" else None, device=dev)
        key = zlib.crc32(json.dumps([arch, init, st.init_id, asdict(cfg), teacher.info.id], sort_keys=True).encode())
        ckpt = out_dir / "distill" / _slug(arch) / f"{init}-{key:08x}"
        if not resume and ckpt.exists():
            shutil.rmtree(ckpt)
        before = st.score(arch, *held_t)
        stats = st.train(*train_t, out_dir=ckpt, progress=progress)
        cost = space.cost(arch)
        report["students"].append({
            "arch": arch, "role": "top" if k < len(tops) else "control", "rank": picked[k].rank if k < len(tops) else None,
            "score": -float(loss_in_lm), "search_score": search_scores.get(arch), "params": cost["params"],
            "flops": cost["flops"], "init": init, "steps": st.step, "steps_run": len(stats["history"]),
            "held_out_loss_before": before, "held_out_loss_after": st.score(arch, *held_t),
            **agreement(st.net),
            "seconds": stats["seconds"], "tokens_per_s": stats["tokens_per_s"], "checkpoint": str(ckpt)})
        report["verdict"] = text_verdict(report["students"])
        write_json(verify_json, report)  # a partial report survives a kill
    report["complete"] = True
    report["seconds"] = time.perf_counter() - t_start
    if plot and not plot_text_verify(report, out_dir / "verify.png"):
        report["notes"].append("matplotlib is not installed: verify.png was not written")
    write_json(verify_json, report)
    return report
