"""Ground truth: an accuracy per architecture, from a CSV or the official NAS-Bench-201 file.

This module sits below :mod:`searchkd.api`, :mod:`searchkd.bench` and
:mod:`searchkd.orchestrate` (it imports none of them), so every reader of ground truth
(``bench correlation``, ``search --ground-truth``, sweeps, the benchmark scripts) uses it
without an import circle.

* ``PATH.csv``: columns ``arch`` and the ``--column``; an ``index`` column, when present,
  is carried along.
* ``nb201:PATH``: the official NAS-Bench-201 file (``NAS-Bench-201-v1_1-096897.pth`` or
  ``v1_0-e61699.pth``) read through the ``nas-bench-201`` package's
  :class:`nas_201_api.NASBench201API`, for ``--dataset`` ``cifar10`` (default),
  ``cifar10-valid``, ``cifar100`` or ``ImageNet16-120``, with the 200-epoch schedule averaged
  over the trial seeds (``hp="200"``, ``is_random=False``). ``--column`` is a key of
  ``get_more_info`` (``test-accuracy``, ``valid-accuracy``, ``valtest-accuracy``,
  ``train-accuracy``, ``test-loss`` …) or the CSV-style ``DATASET_test_acc`` /
  ``DATASET_valid_acc``. The file is a pickle you download: trusted input only (a crafted
  pickle runs code). It is loaded once per process, and only when asked for.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from searchkd.errors import SearchKDError, first_line

__all__ = ["GroundTruth", "read_ground_truth", "NB201_DATASETS"]

NB201_DATASETS = ("cifar10", "cifar10-valid", "cifar100", "ImageNet16-120")
_API_CACHE: dict[tuple[str, float], object] = {}


class GroundTruth(dict):
    """``arch`` → value; ``index`` maps an arch to its official index where the source has one."""

    def __init__(self, values: dict[str, float], index: dict[str, int] | None = None) -> None:
        super().__init__(values)
        self.index: dict[str, int] = index or {}


def read_ground_truth(path: str | Path, column: str, dataset: str | None = None) -> GroundTruth:
    """``arch`` → value of ``column`` from a CSV, or from ``nb201:FILE.pth`` for ``dataset``."""
    text = str(path)
    if text.startswith("nb201:"):
        return _read_nb201(text[len("nb201:"):], column, dataset or "cifar10")
    if dataset is not None:
        raise SearchKDError(f"--dataset picks a dataset of nb201:FILE ground truth; {path} is a CSV (its columns "
                            "name the dataset)")
    return _read_csv(Path(path), column)


def _read_csv(path: Path, column: str) -> GroundTruth:
    if not path.is_file():
        raise SearchKDError(f"ground-truth file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        if "arch" not in cols or column not in cols:
            raise SearchKDError(f"{path} needs columns 'arch' and {column!r}; it has {', '.join(cols) or 'none'}")
        out, index = {}, {}
        for i, row in enumerate(reader, start=2):
            try:
                out[row["arch"]] = float(row[column])
            except (TypeError, ValueError):
                raise SearchKDError(f"{path}:{i}: {column}={row[column]!r} is not a number") from None
            if "index" in cols and (row.get("index") or "").isdigit():
                index[row["arch"]] = int(row["index"])
    if not out:
        raise SearchKDError(f"{path} has no rows")
    return GroundTruth(out, index)


def _nb201_key(column: str, dataset: str) -> str:
    for suffix, key in (("_test_acc", "test-accuracy"), ("_valid_acc", "valid-accuracy")):
        if column == dataset + suffix:
            return key
    return column


def _nb201_api(path: Path) -> object:
    """The NASBench201API of ``path``, built once per process (the v1_1 file takes minutes and GBs)."""
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _API_CACHE:
        try:
            from nas_201_api import NASBench201API
        except ImportError:
            raise SearchKDError("nb201: ground truth needs the nas-bench-201 package (pip install nas-bench-201, "
                                "or the nb201 extra: pip install 'searchkd[nb201]')") from None
        try:
            try:
                api = NASBench201API(str(path), verbose=False)
            except Exception as e:  # torch >= 2.6 loads weights_only; the official file may hold other types
                if "weights_only" not in str(e) and "Unpickl" not in type(e).__name__:
                    raise
                import torch

                api = NASBench201API(torch.load(path, map_location="cpu", weights_only=False), verbose=False)
        except SearchKDError:
            raise
        except Exception as e:
            raise SearchKDError(f"nb201:{path} is not a NAS-Bench-201 file ({first_line(e)})") from None
        _API_CACHE.clear()  # one benchmark file in memory at a time
        _API_CACHE[key] = api
    return _API_CACHE[key]


def _read_nb201(file: str, column: str, dataset: str) -> GroundTruth:
    path = Path(os.path.expanduser(file))
    if dataset not in NB201_DATASETS:
        raise SearchKDError(f"unknown --dataset {dataset!r} for nb201: ground truth ({', '.join(NB201_DATASETS)})")
    if not path.is_file():
        raise SearchKDError(f"NAS-Bench-201 file not found: {path}")
    api = _nb201_api(path)
    key = _nb201_key(column, dataset)
    out, index = {}, {}
    for i in api.evaluated_indexes:  # type: ignore[attr-defined]
        arch = api.meta_archs[i]  # type: ignore[attr-defined]
        try:
            info = api.get_more_info(i, dataset, hp="200", is_random=False)  # type: ignore[attr-defined]
        except KeyError:
            raise SearchKDError(f"nb201:{path} has no {dataset} results (arch {i})") from None
        if key not in info:
            known = ", ".join(k for k in info if info[k] is not None)
            raise SearchKDError(f"nb201:{path} --dataset {dataset} has no column {column!r} (known: {known}; or "
                                f"{dataset}_test_acc, {dataset}_valid_acc)")
        if info[key] is not None:
            out[arch], index[arch] = float(info[key]), int(i)
    if not out:
        raise SearchKDError(f"nb201:{path} holds no evaluated architectures")
    return GroundTruth(out, index)
