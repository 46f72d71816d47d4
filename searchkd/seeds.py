"""Independent random streams derived from one user seed.

A search has one ``--seed``; several things draw from it: the teacher's random
initialisation, each student's initialisation, the data split of a distill run. If two of
them were seeded with the same number, a student would share bit-identical weights with the
teacher for the common prefix of their parameter-creation order (every conv tensor and the
classifier of a cell that differs from the teacher only in a parameter-free op), which makes
a teacher-similarity proxy such as DisWOT look better than it is.

So every consumer draws from its own stream, named, derived with
:class:`numpy.random.SeedSequence` (``SeedSequence([seed, stream])``; statistically
independent streams, stable across numpy versions):

* ``"teacher"`` — the teacher's random initialisation and its proxy state;
* ``"student"`` + the arch — a student's own stream (:func:`arch_seed`), used where students
  are trained (distill), so each one's draw is its own and does not depend on which others
  are trained;
* ``"split"`` — the train / held-out split of the distill stage;
* ``"acm"`` + the stage's name + the step — the batches and Gumbel noise of each ACM
  training step (:func:`searchkd.supernets.acm.steps.step_seed`): stages 1, 2 and each
  budget's stage 3 draw from streams of their own.

Proxy scoring keeps ``seed`` itself for every student: all students of one search share it
(common random numbers, so score differences come from the architecture, not the draw), and
no teacher ever uses it.
"""

from __future__ import annotations

import zlib

__all__ = ["stream_seed", "teacher_seed", "arch_seed", "STREAMS"]

#: the named streams; the number is part of the derivation, so never reorder them
STREAMS = {"teacher": 1, "student": 2, "split": 3, "acm": 4}


def stream_seed(seed: int, stream: str, *extra: int) -> int:
    """A 31-bit seed for ``stream`` (a name of :data:`STREAMS`), independent of ``seed`` itself
    and of every other stream; ``extra`` integers refine it (e.g. an arch's hash)."""
    import numpy as np

    from searchkd.errors import SearchKDError

    if stream not in STREAMS:
        raise ValueError(f"unknown seed stream {stream!r} ({', '.join(STREAMS)})")
    if int(seed) < 0:
        raise SearchKDError(f"a seed must be a non-negative integer, got {seed}")
    words = np.random.SeedSequence([int(seed), STREAMS[stream], *map(int, extra)]).generate_state(1, dtype=np.uint32)
    return int(words[0]) & 0x7FFFFFFF


def teacher_seed(seed: int) -> int:
    """The seed of the teacher's random initialisation (and its proxy state)."""
    return stream_seed(seed, "teacher")


def arch_seed(seed: int, arch: str) -> int:
    """A student's own seed: the same for the same (seed, arch), whatever else is trained."""
    return stream_seed(seed, "student", zlib.crc32(arch.encode()))
