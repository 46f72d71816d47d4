"""What the DARTS strategy and its epoch loop share: the options, the data split, the schedule,
the run's identity, the alpha records and SD-DARTS's voting teacher. Below both
(:mod:`searchkd.strategies.darts` and :mod:`searchkd.strategies._darts_loop` import it; it imports
neither), so the strategy and its loop form no import circle.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from searchkd.errors import SearchKDError

__all__ = ["DartsOptions", "SUPERNET_SPACES", "TEST_FILES", "CHECKPOINT", "ALPHAS", "default_search_data",
           "warn_test_images", "data_id", "cosine_lr", "plot_alphas", "write_alphas", "config_id", "vote"]

#: spaces that have a DARTS supernet
SUPERNET_SPACES = ("nb201",)
CHECKPOINT, ALPHAS = "checkpoint.pt", "alphas.json"
TRAIN_FILE = "cifar10_train_25k.npz"
#: sha256 of the ``x`` array of the shared CIFAR-10 *test* files (``../shared/data/images``)
TEST_FILES = {
    "cifar10_test_1000.npz": "7389105d33aae0b525bd0e44164e3cd561b4af367189458b552cea6b7d209254",
    "cifar10_test_10k.npz": "5a6aa8185204d80b65d3dfb540696dadd5f10d185ded226a96665d3e0fc6259f",
}


@dataclass(frozen=True)
class DartsOptions:
    """The strategy's options (``SearchConfig.options``); see the module docstring.

    ``width``/``cells``: the supernet's C and N (default: the benchmark's 16 and 5 on a GPU,
    8 and 1 on a CPU, fixed in the config when the search starts). ``order``: 1 (DARTS-V1) or 2
    (DARTS-V2). ``augment``: NB201's crop and flip on both halves. ``train_teacher``: epochs to
    train ``--teacher`` on the w half first. ``images``: use at most this
    many images. ``val_fraction``: the share of them that trains α. ``split_seed``: draw the subset
    and the split from this seed's ``split`` stream instead of the search's (one split for several
    seeds, as the benchmark uses). ``sd_*``: SD-DARTS
    (:mod:`searchkd.strategies.sd_darts`), off for ``darts``.
    """

    width: int | None = None
    cells: int | None = None
    order: int = 1
    augment: bool = True
    train_teacher: int | None = None
    images: int | None = None
    val_fraction: float = 0.5
    split_seed: int | None = None
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = True
    w_weight_decay: float = 5e-4
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


def default_search_data() -> str:
    """``npz:`` of the shared CIFAR-10 training file (beside the project, or under the working
    directory's parent); :class:`SearchKDError` if it is in neither place."""
    here = Path(__file__).resolve().parents[2]
    for root in (here.parent, Path.cwd().parent, Path.cwd()):
        path = root / "shared" / "data" / "images" / TRAIN_FILE
        if path.is_file():
            return f"npz:{path}"
    raise SearchKDError(f"darts and sd-darts search on CIFAR-10 training images by default, but {TRAIN_FILE} is not "
                        "in ../shared/data/images; give --data (npz:PATH, cifar10:DIR …)")


def warn_test_images(data: str) -> None:
    """A one-line warning when ``data`` is one of the shared CIFAR-10 test files (by checksum):
    NB201's accuracies, by which a derived cell is judged, were measured on those images."""
    import warnings

    kind, _, path = str(data).partition(":")
    if kind != "npz" or not Path(path).is_file() or Path(path).stat().st_size > 64 << 20:
        return
    try:
        with np.load(path, allow_pickle=False) as z:
            digest = hashlib.sha256(np.ascontiguousarray(z["x"]).tobytes()).hexdigest()
    except Exception:  # a bad file is reported where it is read
        return
    name = next((n for n, h in TEST_FILES.items() if h == digest), None)
    if name is not None:
        warnings.warn(f"--data holds the CIFAR-10 test images of {name}, on which NAS-Bench-201 measured the "
                      f"accuracies a derived cell is judged by: search on training images ({TRAIN_FILE}, the "
                      "default)", UserWarning, stacklevel=2)


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
    from searchkd.io import agg_figure
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


def vote(logits: Sequence[Any], temperature: float, rule: str = "soft") -> Any:
    """The voting teacher's log-probabilities (B×C) from K teachers' logits (each B×C).

    ``soft``: log of the mean of softmax(z_k / T). ``hard``: per row, the class most teachers
    put first (ties: the larger mean probability); log of the mean softmax(z_k / T) over the
    teachers that put it first.
    """
    import torch
    import torch.nn.functional as F

    p = F.softmax(torch.stack(list(logits)).float() / temperature, dim=-1)  # K×B×C
    mean = p.mean(0)
    if rule == "soft":
        return mean.clamp_min(1e-30).log()
    if rule != "hard":
        raise ValueError(f"unknown voting rule {rule!r} (soft, hard)")
    first = p.argmax(-1)  # K×B
    votes = F.one_hot(first, p.shape[-1]).sum(0).float()  # B×C
    majority = (2 * votes + mean).argmax(-1)  # a mean probability (≤ 1) only breaks ties
    agree = (first == majority).float().unsqueeze(-1)  # K×B×1
    return ((p * agree).sum(0) / agree.sum(0)).clamp_min(1e-30).log()
