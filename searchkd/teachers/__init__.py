"""Teachers, image and text, behind one :func:`resolve_teacher` and one :func:`build_teacher`.

``base.py``: the specs and registered names, ``resolve_teacher`` and ``load_weights``; ``text.py``:
BERT-family teachers read offline from a Hugging Face directory. An image teacher is a space's
network, built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from searchkd.registry import TEACHERS  # the registered names, as before the move
from searchkd.teachers.base import HFTeacherSpec, TeacherSpec, check_hf_dir, load_weights, resolve_teacher

__all__ = ["TEACHERS", "TeacherSpec", "HFTeacherSpec", "resolve_teacher", "build_teacher", "load_weights", "check_hf_dir"]


def build_teacher(spec: str | TeacherSpec | None, space: str | None = None, num_classes: int = 10,
                  weights: str | Path | None = None) -> Any:
    """The teacher network (random init unless ``weights`` names a state dict); for a BERT-family
    teacher (``hf:DIR``, ``minilm-l6``) the pretrained :class:`~searchkd.teachers.text.TextTeacher`."""
    from searchkd.spaces import get_space

    ts = spec if isinstance(spec, TeacherSpec) else resolve_teacher(spec, space)
    if isinstance(ts, HFTeacherSpec):  # a TextTeacher (model + tokenizer), not a space's network
        from searchkd.teachers.text import load_text_teacher

        return load_text_teacher(ts, weights=weights)
    model = get_space(ts.space).build(ts.arch, num_classes=num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model
