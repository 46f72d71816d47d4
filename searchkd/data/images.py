"""Image-set loaders: ``embedded``, ``npz:PATH``, ``cifar10:DIR``, ``cifar100:DIR``, ``folder:DIR``.

``cifar10:``/``cifar100:`` read the official python batches with :mod:`pickle`, which runs
whatever code a crafted file holds: point them only at the official CIFAR download or at
files you made yourself (trusted input). ``npz:`` is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from searchkd.errors import SearchKDError

__all__ = ["ImageSet", "load_images", "normalize", "CIFAR_MEAN", "CIFAR_STD", "DATA_FORMS"]

# The statistics NAS-Bench-201 normalises CIFAR with (xautodl: 125.3/123.0/113.9, 63.0/62.1/66.7).
CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
DATA_FORMS = "embedded, npz:PATH, cifar10:DIR, cifar100:DIR, folder:DIR"
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageSet:
    """Images ``x`` (uint8, N×H×W×3) with labels ``y`` (int64, 0..num_classes-1)."""

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    name: str

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray, name: str | None = None) -> "ImageSet":
        return ImageSet(self.x[idx], self.y[idx], self.num_classes, name or self.name)

    def split(self, held_out: float, seed: int = 0, keep_in_train: Any = None) -> tuple["ImageSet", "ImageSet"]:
        """A seeded, stratified (train, held-out) split; see :meth:`split_indices`."""
        train, test = self.split_indices(held_out, seed, keep_in_train)
        return self.subset(train, self.name + "[train]"), self.subset(test, self.name + "[held-out]")

    def split_indices(self, held_out: float, seed: int = 0, keep_in_train: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The sorted (train, held-out) indices of a seeded, stratified split.

        Each class holds out ``round(n_c * held_out)`` of its images: the first of a seeded
        shuffle of the class that are not in ``keep_in_train``. So images that must stay out
        of the held-out part (the batch a proxy scored on) are swapped for the class's next
        ones: the held-out size and class balance stay the same, and without
        ``keep_in_train`` the split is the plain one.
        """
        if not 0.0 < held_out < 1.0:
            raise SearchKDError(f"held-out fraction must be in (0, 1), got {held_out}")
        keep = np.asarray([] if keep_in_train is None else keep_in_train, dtype=np.int64)
        rng = np.random.default_rng(seed)
        test_parts = []
        for c in range(self.num_classes):
            idx = np.flatnonzero(self.y == c)
            rng.shuffle(idx)
            n_held = int(round(len(idx) * held_out))
            test_parts.append(idx[~np.isin(idx, keep)][:n_held])
        test = np.sort(np.concatenate(test_parts))
        return np.setdiff1d(np.arange(len(self)), test), test

    def indices(self, batch_size: int, seed: int = 0) -> np.ndarray:
        """``batch_size`` distinct indices, seeded, classes interleaved so small batches see
        every class (the DisWOT/zero-cost setting: one batch of real labelled images)."""
        if batch_size <= 0:
            raise SearchKDError(f"batch size must be positive, got {batch_size}")
        if batch_size > len(self):
            raise SearchKDError(f"batch size {batch_size} exceeds the {len(self)} images of {self.name}")
        rng = np.random.default_rng(seed)
        per_class = [rng.permutation(np.flatnonzero(self.y == c)) for c in range(self.num_classes)]
        order = [int(idx[k]) for k in range(max(map(len, per_class))) for idx in per_class if k < len(idx)]
        return np.array(order[:batch_size])[rng.permutation(batch_size)]

    def batch(self, batch_size: int = 64, seed: int = 0, device: Any = None) -> tuple[Any, Any]:
        """A normalised ``(images, labels)`` pair of tensors, the same for the same seed."""
        idx = self.indices(batch_size, seed)
        return to_tensors(self.x[idx], self.y[idx], device)


def to_tensors(x: np.ndarray, y: np.ndarray, device: Any = None) -> tuple[Any, Any]:
    import torch

    images = normalize(torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(255))
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    if device is not None:
        images, labels = images.to(device), labels.to(device)
    return images, labels


def normalize(images: Any) -> Any:
    """Normalise a float B×3×H×W tensor in [0, 1] with the CIFAR statistics."""
    import torch

    mean = torch.tensor(CIFAR_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def load_images(spec: str, split: str = "train") -> ImageSet:
    """Read a ``--data`` spec. ``split`` picks the train or test batches of ``cifar10:``/``cifar100:``."""
    if not isinstance(spec, str) or not spec:
        raise SearchKDError(f"--data must be one of {DATA_FORMS}")
    if spec == "embedded":
        return load_embedded()
    kind, sep, arg = spec.partition(":")
    if not sep or not arg:
        raise SearchKDError(f"unknown data {spec!r} (accepted: {DATA_FORMS})")
    loaders = {"npz": load_npz, "cifar10": _cifar(10), "cifar100": _cifar(100), "folder": load_folder}
    if kind not in loaders:
        raise SearchKDError(f"unknown data kind {kind!r} in {spec!r} (accepted: {DATA_FORMS})")
    path = Path(os.path.expanduser(arg))
    if not path.exists():
        raise SearchKDError(f"data path not found: {path}")
    if kind in ("npz",):
        return load_npz(path)
    if kind == "folder":
        return load_folder(path)
    return loaders[kind](path, split)


def load_embedded() -> ImageSet:
    """The embedded default data: the UCI optical-recognition handwritten digits shipped with
    scikit-learn (1,797 real scanned digits, 10 classes, 8×8 grey levels 0–16), upsampled
    bilinearly to 32×32 and repeated over three channels. Needs no download."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    img = digits.images.astype(np.float32) / 16.0  # N×8×8 in [0, 1]
    up = zoom(img, (1, 4, 4), order=1, mode="nearest", grid_mode=True)
    x = np.clip(up * 255.0 + 0.5, 0, 255).astype(np.uint8)
    x = np.repeat(x[..., None], 3, axis=3)
    return ImageSet(x, digits.target.astype(np.int64), 10, "embedded:uci-digits")


def _check_images(x: Any, y: Any, where: str) -> ImageSet:
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
        raise SearchKDError(f"{where}: 'x' must be uint8 N×H×W×3, got {x.dtype} with shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise SearchKDError(f"{where}: 'y' must be {len(x)} integer labels, got {y.dtype} with shape {y.shape}")
    if len(y) == 0:
        raise SearchKDError(f"{where}: no images")
    if y.min() < 0:
        raise SearchKDError(f"{where}: labels must be ≥ 0, found {int(y.min())}")
    return ImageSet(x, y.astype(np.int64), int(y.max()) + 1, where)


def load_npz(path: Path) -> ImageSet:
    """An ``.npz`` with ``x`` (uint8 N×H×W×3) and ``y`` (integer labels)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"x", "y"} - set(f.files)
            if missing:
                raise SearchKDError(f"npz:{path}: missing array(s) {sorted(missing)} (needs 'x' uint8 N×H×W×3 and 'y' labels)")
            x, y = f["x"], f["y"]
    except SearchKDError:
        raise
    except Exception as e:  # zipfile/pickle/OS errors: not a usable npz
        raise SearchKDError(f"npz:{path}: cannot read ({type(e).__name__}: {e})") from None
    return _check_images(x, y, f"npz:{path}")


def _cifar(classes: int) -> Any:
    def load(path: Path, split: str) -> ImageSet:
        return load_cifar(path, classes, split)

    return load


def load_cifar(path: Path, classes: int, split: str = "train") -> ImageSet:
    """The official CIFAR python batches (``data_batch_1..5``/``test_batch`` for CIFAR-10,
    ``train``/``test`` for CIFAR-100), as extracted from ``cifar-*-python.tar.gz``."""
    if split not in ("train", "test"):
        raise SearchKDError(f"split must be 'train' or 'test', got {split!r}")
    if classes == 10:
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        key = b"labels"
    else:
        names, key = [split], b"fine_labels"
    where = f"cifar{classes}:{path}"
    files = [path / n for n in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise SearchKDError(f"{where}: missing {', '.join(missing)} (expected the extracted python batches)")
    xs, ys = [], []
    for f in files:
        try:
            with open(f, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            data, labels = np.asarray(d[b"data"], dtype=np.uint8), np.asarray(d[key])
        except Exception as e:
            raise SearchKDError(f"{where}: {f.name} is not a CIFAR python batch ({type(e).__name__}: {e})") from None
        if data.ndim != 2 or data.shape[1] != 3072:
            raise SearchKDError(f"{where}: {f.name} has data of shape {data.shape}, expected N×3072")
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    out = _check_images(np.concatenate(xs), np.concatenate(ys), where)
    return ImageSet(out.x, out.y, classes, out.name)


def load_folder(path: Path, size: int = 32) -> ImageSet:
    """One sub-folder per class (sorted names → labels 0..K-1), images resized to size×size RGB."""
    from PIL import Image

    if not path.is_dir():
        raise SearchKDError(f"folder:{path} is not a directory")
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    xs, ys = [], []
    for label, cdir in enumerate(classes):
        for f in sorted(cdir.iterdir()):
            if f.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    xs.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8))
            except Exception as e:
                raise SearchKDError(f"folder:{path}: cannot read image {f} ({type(e).__name__})") from None
            ys.append(label)
    if not xs:
        raise SearchKDError(f"folder:{path}: no images found (expected one sub-folder per class holding image files)")
    out = _check_images(np.stack(xs), np.array(ys), f"folder:{path}")
    return ImageSet(out.x, out.y, len(classes), out.name)
