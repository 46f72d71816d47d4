"""One rule for every search setting: it is refused (one :class:`SearchKDError`) when it does not
apply to the search it is given to, or holds a value that would be replaced or make nonsense,
rather than accepted and ignored.

Found by trying searchkd as a new user would (issue 23): ``--sd-teachers 3`` on plain
``darts`` and ``--supernet-steps 5`` on an ``nb201`` evolution search were accepted and did
nothing, ``--supernet-width 0`` was replaced by the CPU default, and ``--sd-weight nan``
trained to chance and still reported a best cell. The CLI refuses NaN/±inf for every real
flag when it parses them (:mod:`searchkd.cli`); this module says the same for a config built
in Python (``searchkd.search(..., options=...)``) or read from a sweep's TOML.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from searchkd.errors import SearchKDError

__all__ = ["check_applicable", "check_teacher_used", "option_flag"]

#: options that size something: 0 must not stand for "the default"
_POSITIVE = ("width", "cells", "images")
#: options of the self-distillation term, which only sd-darts has
_SD_ONLY = ("sd_teachers", "sd_temperature", "sd_voting", "sd_interval")
#: options of the KD term toward --teacher, which only a teacher-guided darts/sd-darts search has
_KD_ONLY = ("kd_weight", "kd_temperature")
_DARTS = ("darts", "sd-darts")
#: the SuperLM's settings (the first reuses a trained one; the others train one)
_SUPERLM = (("supernet", "--supernet"), ("supernet_steps", "--supernet-steps"), ("supernet_lr", "--supernet-lr"),
            ("supernet_init", "--init"))


def option_flag(key: str) -> str:
    """The ``searchkd search`` flag that sets strategy option ``key``."""
    return {"width": "--supernet-width", "cells": "--supernet-cells"}.get(key, "--" + key.replace("_", "-"))


def check_applicable(config: Any) -> None:
    """Refuse what ``config`` (a :class:`~searchkd.types.SearchConfig`) sets but would ignore or
    silently replace: non-finite numbers anywhere in it, a zero supernet size, self-distillation
    options on plain darts, KD options without a teacher, SuperLM settings where no SuperLM is
    used."""
    for key, value in config.options.items():
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isfinite(value):
            raise SearchKDError(f"{option_flag(key)} must be a finite number, got {value!r}")
        if key in _POSITIVE and value is not None and (
                isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise SearchKDError(f"{option_flag(key)} must be a positive integer, got {value!r} (leave it out for "
                                f"the default)")
    for key in ("max_params", "supernet_lr"):
        value = getattr(config, key, None)
        if isinstance(value, numbers.Real) and not math.isfinite(value):
            raise SearchKDError(f"--{key.replace('_', '-')} must be a finite number, got {value!r}")
    strategy = config.strategy
    if strategy in _DARTS:
        if strategy == "darts":
            given = [k for k in _SD_ONLY if k in config.options]
            if given:
                raise SearchKDError(f"{option_flag(given[0])} sets the self-distillation term of --strategy sd-darts; "
                                    f"plain darts has none (use sd-darts, or leave it out)")
        given = [k for k in _KD_ONLY if k in config.options]
        if given and config.teacher is None:
            raise SearchKDError(f"{option_flag(given[0])} weighs the KD term toward --teacher; this search has no "
                                f"--teacher (give one, or leave it out)")
    uses_superlm = "superlm" in config.proxies
    for key, flag in _SUPERLM:
        if getattr(config, key, None) is not None and not uses_superlm:
            where = (f"{config.space} has no SuperLM" if not str(config.space).startswith("bert")
                     else f"proxy {config.proxy} does not use one")
            raise SearchKDError(f"{flag} is for the SuperLM that the superlm proxy (bert-* spaces, autodistil) "
                                f"scores with; this search's {where}")
    if getattr(config, "supernet", None) is not None:
        given = [flag for key, flag in _SUPERLM[1:] if getattr(config, key, None) is not None]
        if given:
            raise SearchKDError(f"{given[0]} sets how a SuperLM is trained, and --supernet {config.supernet} reuses one "
                                f"already trained: leave one of them out")


def check_teacher_used(config: Any, text: bool) -> None:
    """``--teacher-weights`` when no proxy of the search reads the teacher (``params``, ``synflow``
    …): the weights would never be loaded, or even checked."""
    if config.teacher_weights is None:
        return
    if text:
        from searchkd.evaluate.text import _NEEDS_TEACHER

        used = any(p in _NEEDS_TEACHER for p in config.proxies)
    else:
        from searchkd.proxies import get_proxy

        used = any(get_proxy(p).needs_teacher for p in config.proxies)
    if not used:
        raise SearchKDError(f"--teacher-weights loads the teacher, and no proxy of this search ({config.proxy}) uses "
                            f"one: leave it out")
