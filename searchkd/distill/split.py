"""The distill stage's train / held-out split, and the images it must never hold out.

Accuracy measured on held-out images says how well a student generalises only if nothing that
chose or taught the student has seen them: not the teacher (a ``teacher.pt`` records the split
it was trained on, :data:`SPLIT_KEYS`), and not the proxies that ranked the students (the
search's proxy batch stays in the train part).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from searchkd.data.images import load_images
from searchkd.distill.select import search_eval_config
from searchkd.errors import SearchKDError
from searchkd.seeds import stream_seed

__all__ = ["load_data", "split_data", "proxy_batch", "SPLIT_KEYS", "search_split_seed", "supernet_dir",
           "check_superlm_rows"]

#: what decides which images are trained on and which held out; a ``teacher.pt`` is only
#: reused when all of them (and its arch and class count) match this run's
SPLIT_KEYS = ("data", "held_out", "split_seed", "n_train", "n_held_out", "held_out_crc")


def proxy_batch(config: dict[str, Any], data: str) -> tuple[int, int] | None:
    """``(batch_size, seed)`` of the batch the search's proxies scored on
    (:meth:`~searchkd.data.images.ImageSet.indices`), when ``data`` is the search's data; else None."""
    ec = search_eval_config(config)
    if search_eval_config({**config, "data": data}).data != ec.data:  # both paths made absolute the same way
        return None
    return int(ec.batch_size), int(ec.seed)


def load_data(spec: str, held_out: float = 0.2, seed: int = 0, *,
              keep_batch: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """(train, held-out) image sets: CIFAR's official train/test batches, or for any other
    form a stratified split with ``held_out`` of the images held out.

    The split draws from its own stream, ``stream_seed(seed, "split")`` (:mod:`searchkd.seeds`),
    never from ``seed`` itself: the search's proxy batch is ``ImageSet.indices(batch, seed)``,
    which shuffles each class exactly as a split with the same seed does, so the images the
    proxies scored on would all be held out. ``keep_batch=(batch_size, seed)`` keeps the
    images of that batch out of the held-out part (:func:`proxy_batch`; CIFAR holds out its
    test batches, which a proxy batch never comes from).
    """
    return split_data(spec, held_out, seed, keep_batch)[:2]


def split_data(spec: str, held_out: float, seed: int, keep_batch: tuple[int, int] | None) -> tuple[Any, Any, int]:
    """:func:`load_data`, and how many images of ``keep_batch`` the plain split would have held out."""
    if spec.partition(":")[0] in ("cifar10", "cifar100"):
        return load_images(spec, "train"), load_images(spec, "test"), 0
    full = load_images(spec)
    split_seed = stream_seed(seed, "split")
    keep = None if keep_batch is None else full.indices(*keep_batch)
    train, held = full.split(held_out, split_seed, keep_in_train=keep)
    if len(held) == 0:
        raise SearchKDError(f"{spec}: no image is left to hold out (held-out fraction {held_out} of {len(full)} images, "
                            f"{0 if keep is None else len(keep)} of them kept for the search's proxy batch)")
    moved = 0 if keep is None else int(np.isin(keep, full.split_indices(held_out, split_seed)[1]).sum())
    return train, held, moved


# the split of a BERT-space search (its text), shared by the text distill and the downstream task
def supernet_dir(config: dict[str, Any], out_dir: Path) -> Path:
    """The SuperLM a search scored with: ``config.supernet`` (reused) or ``out_dir/supernet``."""
    d = Path(config["supernet"]) if config.get("supernet") else out_dir / "supernet"
    if not ((d / "config.json").is_file() and (d / "checkpoint.pt").is_file()):
        raise SearchKDError(f"no SuperLM checkpoint at {d} (config.json, checkpoint.pt): the search's SuperLM is "
                            "needed to verify its picks")
    return d


def search_split_seed(config: dict[str, Any]) -> int:
    """The seed of a search's train/held-out text split, from its ``result.json`` config: the
    proxies' seed ``proxy_seed`` when the search set one, else ``seed`` (as
    :func:`searchkd.evaluate.text.split_seed` takes it from a live config)."""
    proxy_seed = config.get("proxy_seed")
    return int(config.get("seed", 0) if proxy_seed is None else proxy_seed)


def check_superlm_rows(supernet: Path, train: tuple[Any, Any]) -> None:
    """Refuse to verify on a split whose train rows are not the rows the SuperLM trained on
    (its ``config.json`` records their fingerprint): the held-out rows would then include
    rows the SuperLM (and the students it hands on) saw."""
    from searchkd.io import read_json
    from searchkd.supernets.superlm import _fingerprint

    saved = read_json(supernet / "config.json").get("data")
    if saved is not None and saved != _fingerprint(*train):
        raise SearchKDError(f"{supernet} was trained on other rows than this search's train split (other text, "
                            "seed or proxy_seed): its held-out rows would not be held out")
