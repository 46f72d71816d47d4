"""DARTS on NAS-Bench-201: Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search"
(ICLR 2019), first order (DARTS-V1) or second order (DARTS-V2, ``order`` 2), on the supernet of
:mod:`searchkd.supernets.nb201_supernet`, with NAS-Bench-201's settings (Dong & Yang, ICLR 2020;
D-X-Y/AutoDL-Projects: ``configs/nas-benchmark/algos/DARTS.config``, ``exps/NAS-Bench-201-algos/
DARTS-V1.py`` / ``DARTS-V2.py``, ``xautodl/datasets/get_dataset_with_transform.py``).

A weight-sharing strategy with its own epoch loop (no ask/tell). The search driver
(:func:`searchkd.orchestrate.run_search`) checks the config (:meth:`DartsSearch.check`) and runs
:meth:`DartsSearch.run` once, here or as one Ray Tune trial, and writes ``result.json`` from the
``trials.jsonl`` the loop appends to: one record per epoch (the derived cell, its accuracy with
the supernet's weights, the supernet's, α's softmax). ``best`` is the cell derived at the end.

**Data.** By default CIFAR-10 *training* images (``../shared/data/images/cifar10_train_25k.npz``,
:func:`default_search_data`), as NB201 searches on its training set; a search on the shared
CIFAR-10 *test* files (found by checksum) warns, since NB201's accuracies were measured on them.
The images (at most ``images`` of them, a stratified seeded subset) are split in halves, w and
α, from the ``split`` seed stream; both halves get NB201's augmentation (random crop 32 after
4 pixels of zero padding, horizontal flip; ``augment``), drawn from ``(seed, epoch)``.

**NB201's settings** (the defaults): w by SGD, lr 0.025, momentum 0.9, Nesterov, weight decay
5e-4, gradient norm clipped at 5, batch 64; lr cosine from 0.025 towards 0.001 with T_max the
epoch count, indexed by the epoch: NB201's scheduler is updated every step, but its cosine reads
only the epoch (``CosineAnnealingLR.get_lr`` uses ``current_epoch``; ``current_iter`` only in
warm-up, which DARTS.config sets to 0), so the rate is constant within an epoch, as here. α by
Adam, lr 3e-4, betas (0.5, 0.999), weight decay 1e-3. Order 1: each step moves w on a w-half
batch, then α on an α-half batch at the new w (``DARTS-V1.py``). Order 2: α first, by the
unrolled gradient (:func:`~searchkd.supernets.nb201_supernet.second_order_alpha_grad`), then w
(``DARTS-V2.py``'s order). Validation (the per-epoch accuracies) runs in eval mode on the
un-augmented α half, as NB201's ``valid_func``.

**Departures from NB201's code**, declared: the clip is over w's gradients only (NB201 clips
``network.parameters()``, whose α gradient then still holds the previous α step's); DARTS-V2's
extra forward passes (unrolled, ±ε) leave the BN running statistics alone (NB201's ±ε passes
update them); the mixed-op BNs track no running statistics (NB201's ``--track_running_stats``
is a per-run argument); a subset of ``images`` and the 25k-image training file instead of the
50k training set split 25k/25k by ``cifar-split.txt``.

**Teacher-guided** (``--teacher``, off by default): a KD term toward a trained searchkd teacher,
``kd_weight · T² · KL(teacher ‖ supernet)`` at ``kd_temperature`` T, is added to both the w and
the α loss, so α prefers the cell whose supernet output matches the teacher: the cell that
distils best from it. The teacher needs trained weights: ``--teacher-weights``, or
``train_teacher`` N (``--train-teacher N``) epochs on the search's w half first (searchkd's
distillation trainer; kept in ``OUT/teacher/`` and reused on resume). Without either it is a
one-line error: a random teacher would pull both losses toward noise.

**Resume.** A checkpoint (``checkpoint.pt``: weights, α, both optimizers, the snapshots of
SD-DARTS, the epoch records) is replaced atomically after every epoch, before the epoch's record
is appended; a resumed run rewrites ``trials.jsonl`` from the checkpoint and carries on. Batch
orders and augmentation are drawn from ``(seed, epoch)``, so on a CPU a resumed search (even
after SIGKILL) ends with the same α and cell as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Callable


from searchkd.errors import SearchKDError
from searchkd.registry import STRATEGIES
from searchkd.strategies._darts_base import (ALPHAS, CHECKPOINT, SUPERNET_SPACES, TEST_FILES, TRAIN_FILE,  # noqa: F401
                                             DartsOptions, _split, config_id, cosine_lr, data_id,
                                             default_search_data, plot_alphas, warn_test_images, write_alphas)

__all__ = ["DartsSearch", "DartsOptions", "SUPERNET_SPACES", "default_search_data", "TEST_FILES"]

class DartsSearch:
    """DARTS (Liu et al. 2019), first or second order, on the NB201 supernet with NAS-Bench-201's
    settings; the derived cell is the argmax of α."""

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
            from searchkd.devices import resolve_device

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
        if o.order not in (1, 2) or isinstance(o.order, bool):
            raise SearchKDError(f"option order must be 1 or 2 (first- or second-order DARTS), got {o.order!r}")
        if o.train_teacher is not None:
            if isinstance(o.train_teacher, bool) or not (isinstance(o.train_teacher, int) and o.train_teacher >= 1):
                raise SearchKDError(f"--train-teacher must be a positive number of epochs, got {o.train_teacher!r}")
            if config.teacher is None:
                raise SearchKDError("--train-teacher trains the --teacher of a teacher-guided search: give --teacher")
            if config.teacher_weights is not None:
                raise SearchKDError("give --teacher-weights or --train-teacher, not both")
        if config.teacher is not None:
            from searchkd.teachers import resolve_teacher

            resolve_teacher(config.teacher, config.space)
            if config.teacher_weights is None and o.train_teacher is None:
                raise SearchKDError(f"--teacher {config.teacher} has no trained weights: give --teacher-weights PATH or "
                                    "--train-teacher EPOCHS (trained on the search's w half); a random teacher "
                                    "would guide the search toward noise")
        config = replace(config, options={k: v for k, v in asdict(o).items() if v != getattr(DartsOptions, k)
                                          or k in ("width", "cells")})
        _split(config)  # too few images is bad input, found before anything is written
        warn_test_images(config.data)
        return config

    @classmethod
    def run(cls, config: Any, out_dir: str, resume: bool = False, progress: bool | None = None,
            callback: Callable[[int, Any], None] | None = None) -> dict[str, Any]:
        """Run (or resume) the epoch loop into ``out_dir``; ``callback(epoch, loop)`` after each epoch."""
        from searchkd.strategies._darts_loop import DartsLoop

        loop = DartsLoop(config, cls.options(config), Path(out_dir), resume=resume)
        return loop.run(progress=progress, callback=callback)


STRATEGIES.register("darts", DartsSearch, description="DARTS (Liu et al. 2019), first or second order (--order), "
                    "on the NB201 supernet with NAS-Bench-201's settings; --budget counts epochs")
