"""The capacity-gap law as a proxy, and teacher selection by it.

Zhang et al., "Towards the Law of Capacity Gap in Distilling Language Models" (2023): the
best teacher for a student grows linearly with the student's size; their reported optimum
is a teacher about 2.5× the student's parameters (:data:`DEFAULT_RATIO`). The proxy scores
how close a student sits to that optimum for the given teacher:

    capacity_gap = −(log(params_t / params_s) − log(ratio))²

a smooth penalty on the log-ratio's distance from the optimum; 0 is best. It needs no
data. The paper's law is stated for language models; we apply it to CNNs as a prior, not
as a measured fact for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from searchkd.errors import SearchKDError
from searchkd.proxies.base import register_proxy

__all__ = ["DEFAULT_RATIO", "gap_penalty", "pick_teacher", "TeacherChoice"]

DEFAULT_RATIO = 2.5


def _params(net: Any) -> int:
    return sum(p.numel() for p in net.parameters())


def gap_penalty(teacher_params: float, student_params: float, ratio: float = DEFAULT_RATIO) -> float:
    """−(log(teacher/student) − log(ratio))²; 0 when the teacher is exactly ``ratio``× the student."""
    if teacher_params <= 0 or student_params <= 0 or ratio <= 0:
        raise SearchKDError("capacity gap: parameter counts and the ratio must be positive")
    return -((math.log(teacher_params / student_params) - math.log(ratio)) ** 2)


@register_proxy("capacity_gap", needs_teacher=True, needs_data=False,
                prepare=lambda teacher, batch: _params(teacher),
                description="closeness of teacher/student size to the capacity-gap optimum (2.5x; Zhang et al. 2023)")
def capacity_gap(net: Any, batch: Any, teacher_params: int) -> float:
    """Capacity-gap score of a student against the teacher whose size ``prepare`` recorded."""
    return gap_penalty(teacher_params, _params(net))


@dataclass(frozen=True)
class TeacherChoice:
    """The picked teacher, its size, the ideal size and a sentence saying why."""

    teacher: str
    params: float
    ideal_params: float
    reason: str


def pick_teacher(student: str | float, candidates: Sequence[str], *, space: str | None = None,
                 ratio: float = DEFAULT_RATIO) -> TeacherChoice:
    """The candidate teacher whose size best fits ``student`` under the capacity-gap law.

    Args:
        student: a student size in millions of parameters (e.g. the ``--max-params``
            budget) or an architecture string of ``space``.
        candidates: teacher specs (registered names or ``SPACE:ARCH``).
        space: the space ``student`` belongs to when it is an architecture.
        ratio: the optimal teacher/student parameter ratio.
    """
    from searchkd.spaces import get_space
    from searchkd.teachers import resolve_teacher

    if not candidates:
        raise SearchKDError("no teacher candidates given (--teacher-candidates NAME,NAME,...)")
    if isinstance(student, str):
        if space is None:
            raise SearchKDError("a student architecture needs its space to be sized")
        s_params = get_space(space).cost(student)["params"]
    else:
        s_params = float(student)
    if s_params <= 0:
        raise SearchKDError(f"student size must be positive, got {s_params}")
    sized = []
    for c in candidates:
        ts = resolve_teacher(c)
        sized.append((c, get_space(ts.space).cost(ts.arch)["params"]))
    scored = sorted(sized, key=lambda cp: -gap_penalty(cp[1], s_params, ratio))
    name, p = scored[0]
    ideal = ratio * s_params
    others = ", ".join(f"{n} {q:.2f} M" for n, q in scored[1:])
    reason = (f"{name} ({p:.2f} M params) is closest in log-size to the capacity-gap optimum of "
              f"{ratio:g}× the student's {s_params:.3f} M = {ideal:.2f} M" + (f"; others: {others}" if others else ""))
    return TeacherChoice(name, p, ideal, reason)
