"""DARTS on NAS-Bench-201: Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search"
(ICLR 2019), first order, on the supernet of :mod:`searchkd.supernets.nb201_supernet`.

A weight-sharing strategy with its own epoch loop (no ask/tell). The search driver
(:func:`searchkd.orchestrate.run_search`) checks the config (:meth:`DartsSearch.check`) and runs
:meth:`DartsSearch.run` once, here or as one Ray Tune trial, and writes ``result.json`` from the
``trials.jsonl`` the loop appends to: one record per epoch (the derived cell, its accuracy with
the supernet's weights, the supernet's, α's softmax). ``best`` is the cell derived at the end.

The images (``--data``, at most ``images`` of them, a stratified seeded subset) are split into
a train half for the network weights w and a validation half for α, from the ``split`` seed
stream. Each step first moves α on a validation batch (Adam, lr 3e-4, betas (0.5, 0.999),
weight decay 1e-3), then w on a train batch (SGD, momentum 0.9, weight decay 3e-4, lr
0.025 cosine to 0.001 over the epochs, gradient norm clipped at 5): NAS-Bench-201's DARTS-V1
settings. First order: α's gradient is taken at the current w (no unrolled step).

**Teacher-guided** (``--teacher``, off by default): a KD term toward a real searchkd teacher,
``kd_weight · T² · KL(teacher ‖ supernet)`` at ``kd_temperature`` T, is added to both the w and
the α loss, so α prefers the cell whose supernet output matches the teacher: the cell that
distils best from it. The teacher is built on the ``teacher`` seed stream (random unless
``--teacher-weights``) and never updated.

**Resume.** A checkpoint (``checkpoint.pt``: weights, α, both optimizers, the snapshots of
SD-DARTS, the epoch records) is replaced atomically after every epoch, before the epoch's record
is appended; a resumed run rewrites ``trials.jsonl`` from the checkpoint and carries on. Batch
orders are drawn from ``(seed, epoch)`` and no step draws random numbers, so on a CPU a resumed
search (even after SIGKILL) ends with the same α and cell as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from searchkd.errors import SearchKDError
from searchkd.registry import STRATEGIES

__all__ = ["DartsSearch", "DartsOptions", "SUPERNET_SPACES"]

#: spaces that have a DARTS supernet
SUPERNET_SPACES = ("nb201",)
CHECKPOINT, ALPHAS = "checkpoint.pt", "alphas.json"


@dataclass(frozen=True)
class DartsOptions:
    """The strategy's options (``SearchConfig.options``); see the module docstring.

    ``width``/``cells``: the supernet's C and N (default: the benchmark's 16 and 5 on a GPU,
    8 and 1 on a CPU, fixed in the config when the search starts). ``images``: use at most this
    many images. ``val_fraction``: the share of them that trains α. ``split_seed``: draw the subset
    and the split from this seed's ``split`` stream instead of the search's (one split for several
    seeds, as the benchmark uses). ``sd_*``: SD-DARTS
    (:mod:`searchkd.strategies.sd_darts`), off for ``darts``.
    """

    width: int | None = None
    cells: int | None = None
    images: int | None = None
    val_fraction: float = 0.5
    split_seed: int | None = None
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    a_lr: float = 3e-4
    a_weight_decay: float = 1e-3
    sd_weight: float = 0.0
    sd_teachers: int = 2
    sd_temperature: float = 3.0
    sd_voting: str = "soft"
    sd_interval: int = 1
    kd_weight: float = 1.0
    kd_temperature: float = 4.0


class DartsSearch:
    """First-order DARTS (Liu et al. 2019) on the NB201 supernet; the derived cell is the argmax of α."""

    name = "darts"
    #: the score a search ranks by (the derived cell's accuracy with inherited weights)
    default_proxy = "derived_acc"
    #: the config fields a resume may change (the budget fixes the learning-rate schedule)
    resume_may_change = ("device",)
    own_loop = True
    option_defaults: dict[str, Any] = {}

    @classmethod
    def options(cls, config: Any) -> DartsOptions:
        known = {f.name for f in fields(DartsOptions)}
        bad = sorted(set(config.options) - known)
        if bad:
            raise SearchKDError(f"strategy {cls.name!r}: unknown option(s) {', '.join(bad)} (known: {', '.join(sorted(known))})")
        opts = DartsOptions(**{**cls.option_defaults, **config.options})
        if cls.name == "darts" and opts.sd_weight != 0:
            raise SearchKDError("sd_weight is SD-DARTS's: use --strategy sd-darts")
        return opts

    @classmethod
    def check(cls, config: Any, space: Any) -> Any:
        """Validate a search config before anything is written; returns it with the supernet's
        size filled in. :class:`SearchKDError` for bad input."""
        if config.space not in SUPERNET_SPACES:
            raise SearchKDError(f"strategy {cls.name} needs a space with a supernet ({', '.join(SUPERNET_SPACES)}); "
                                f"{config.space} has none")
        if config.proxy != cls.default_proxy:
            raise SearchKDError(f"strategy {cls.name} ranks by its supernet ({cls.default_proxy}); --proxy is not used with it")
        if tuple(config.objectives) != ("proxy",) or config.max_params is not None:
            raise SearchKDError(f"strategy {cls.name} takes no --objectives or --max-params")
        o = cls.options(config)
        if o.width is None or o.cells is None:
            from searchkd.evaluate import resolve_device

            gpu = resolve_device(config.device).startswith("cuda")
            o = replace(o, width=o.width or (16 if gpu else 8), cells=o.cells or (5 if gpu else 1))
        for k in ("width", "cells", "sd_teachers"):
            if not (isinstance(getattr(o, k), int) and getattr(o, k) >= 1):
                raise SearchKDError(f"option {k} must be a positive integer, got {getattr(o, k)!r}")
        if not (isinstance(o.sd_interval, int) and o.sd_interval >= 0):
            raise SearchKDError(f"option sd_interval must be a non-negative integer, got {o.sd_interval!r}")
        if not 0 < o.val_fraction < 1:
            raise SearchKDError(f"option val_fraction must lie in (0, 1), got {o.val_fraction}")
        if o.sd_voting not in ("soft", "hard"):
            raise SearchKDError(f"option sd_voting must be soft or hard, got {o.sd_voting!r}")
        if min(o.sd_weight, o.kd_weight) < 0 or min(o.sd_temperature, o.kd_temperature) <= 0:
            raise SearchKDError("sd_weight and kd_weight must be ≥ 0, the temperatures > 0")
        if config.teacher is not None:
            from searchkd.teachers import resolve_teacher

            resolve_teacher(config.teacher, config.space)
        config = replace(config, options={k: v for k, v in asdict(o).items() if v != getattr(DartsOptions, k)
                                          or k in ("width", "cells")})
        _split(config)  # too few images is bad input, found before anything is written
        return config

    @classmethod
    def run(cls, config: Any, out_dir: str, resume: bool = False, progress: bool | None = None,
            callback: Callable[[int, Any], None] | None = None) -> dict[str, Any]:
        """Run (or resume) the epoch loop into ``out_dir``; ``callback(epoch, loop)`` after each epoch."""
        from searchkd.strategies._darts_loop import DartsLoop

        loop = DartsLoop(config, cls.options(config), Path(out_dir), resume=resume)
        return loop.run(progress=progress, callback=callback)


def _split(config: Any) -> tuple[Any, Any]:
    """The (train, val) image sets of a search: a stratified subset of ``images`` (if set) from
    the ``split`` seed stream, then a stratified split; each part must hold a batch."""
    from searchkd.data.images import load_images
    from searchkd.seeds import stream_seed

    o = DartsOptions(**{k: v for k, v in config.options.items()})
    full = load_images(config.data)
    seed = stream_seed(config.seed if o.split_seed is None else o.split_seed, "split")
    if o.images is not None:
        if not (isinstance(o.images, int) and 0 < o.images):
            raise SearchKDError(f"option images must be a positive integer, got {o.images!r}")
        if o.images < len(full):
            full = full.subset(full.split_indices(o.images / len(full), seed + 1)[1], full.name)
    train, val = full.split(o.val_fraction, seed)
    if min(len(train), len(val)) < config.batch_size:
        raise SearchKDError(f"{config.data}: {len(full)} images split {len(train)}/{len(val)} (train w / val α) "
                            f"leave fewer than one batch ({config.batch_size}) in a part; give more images or a "
                            "smaller --batch-size")
    return train, val


def data_id(train: Any, val: Any) -> str:
    """A fingerprint of the split (what a checkpoint must have been trained on)."""
    h = hashlib.sha1()
    for part in (train, val):
        h.update(str(part.x.shape).encode())
        h.update(np.ascontiguousarray(part.x).tobytes())
        h.update(np.ascontiguousarray(part.y).tobytes())
    return h.hexdigest()


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """The learning rate of ``epoch`` (0-based): cosine from ``lr`` to ``lr_min`` over ``epochs``."""
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs))


def plot_alphas(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """``alphas.png``: one panel per edge, each op's softmax(α) weight over the epochs."""
    from searchkd.orchestrate.plots import agg_figure
    from searchkd.spaces.nb201 import EDGES, OPS

    fig = agg_figure(figsize=(11, 6))
    axes = fig.subplots(2, 3, sharex=True, sharey=True)
    epochs = [h["epoch"] for h in history]
    w = np.array([h["weights"] for h in history])  # epochs × 6 × 5
    for k, ax in enumerate(axes.flat):
        for o, op in enumerate(OPS):
            ax.plot(epochs, w[:, k, o], marker="o", ms=2.5, label=op)
        ax.set_title(f"edge {EDGES[k][1]}→{EDGES[k][0]}", fontsize=9)
        if k >= 3:
            ax.set_xlabel("epoch")
        if k % 3 == 0:
            ax.set_ylabel("softmax(α)")
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_alphas(history: list[dict[str, Any]], out: Path, title: str) -> None:
    """``alphas.json`` (α and softmax(α) per epoch, epoch 0 the initial α) and ``alphas.png``."""
    import warnings

    from searchkd.io import write_json
    from searchkd.spaces.nb201 import EDGES, OPS

    write_json(out / ALPHAS, {"ops": list(OPS), "edges": [f"{s}->{t}" for t, s in EDGES], "epochs": history})
    try:
        plot_alphas(history, out / "alphas.png", title)
    except Exception as e:  # a plot never loses a search
        warnings.warn(f"plotting alphas failed: {e}", RuntimeWarning, stacklevel=2)


def config_id(config: Any) -> str:
    """What decides a search's weights: the config without the device."""
    d = {k: v for k, v in config.to_dict().items() if k != "device"}
    return json.dumps(d, sort_keys=True, default=str)


STRATEGIES.register("darts", DartsSearch, description="DARTS (Liu et al. 2019), first order, on the NB201 supernet; "
                    "--budget counts epochs")
