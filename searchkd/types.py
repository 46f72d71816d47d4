"""Plain data of a search: its config, one trial record, and the result; all JSON round-trip.

These mirror the files of the contract: a :class:`Trial` is one line of ``trials.jsonl``,
a :class:`SearchResult` is ``result.json`` and a :class:`SearchConfig` is its ``config``.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from searchkd.errors import SearchKDError

__all__ = ["SearchConfig", "Trial", "SearchResult", "OBJECTIVES_COST"]

#: objectives that are minimised costs; every other objective is a proxy, maximised
OBJECTIVES_COST = ("params", "flops")


def _num(x: Any) -> Any:
    """Strict JSON has no NaN or infinities: a non-finite score (a failed proxy, ranked worst)
    is written as null (the CONTRACT)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _unnum(x: Any) -> Any:
    """A score as read back: null is the worst score, -inf (logs of older versions wrote
    the strings "-inf"/"nan"/"inf")."""
    if x is None:
        return -math.inf
    return float(x) if isinstance(x, str) and x in ("nan", "inf", "-inf") else x


_NAMES = (str, list, tuple)  # a name, or several
#: what each SearchConfig field may hold (None is allowed where the default is None)
_FIELD_TYPES: dict[str, tuple[Any, ...]] = {
    "space": (str,), "proxy": _NAMES, "strategy": (str,), "budget": (numbers.Integral,), "seed": (numbers.Integral,),
    "teacher": (str,), "teacher_weights": (str,), "data": (str,), "batch_size": (numbers.Integral,),
    "device": (str,), "objectives": _NAMES, "max_params": (numbers.Real,), "combine": (str,),
    "ask_size": (numbers.Integral,), "proxy_seed": (numbers.Integral,), "options": (Mapping,),
    "supernet": (str,), "supernet_steps": (numbers.Integral,), "supernet_init": (str,), "supernet_lr": (numbers.Real,)}
_OPTIONAL = {"teacher", "teacher_weights", "max_params", "ask_size", "proxy_seed", "supernet", "supernet_steps",
             "supernet_init", "supernet_lr"}


def check_setting(key: str, value: Any) -> None:
    """A search setting of the wrong type (a sweep TOML's ``budget = "many"``) as one error."""
    kinds = _FIELD_TYPES.get(key)
    if kinds is None or (value is None and key in _OPTIONAL):
        return
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok and isinstance(value, (list, tuple)):
        ok = all(isinstance(x, str) for x in value)
    if not ok:
        want = {str: "a string", numbers.Integral: "an integer", numbers.Real: "a number", Mapping: "a table"}[kinds[0]]
        raise SearchKDError(f"search setting {key} must be {want}{' or a list of names' if kinds is _NAMES else ''}, "
                            f"got {value!r}")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that decides the outcome of a search (runner settings are not part of it).

    Attributes:
        space: a registered search space.
        proxy: one proxy name or several joined by commas (``"diswot"``, ``"synflow,nwot"``).
        strategy: a registered strategy.
        budget: distinct proxy evaluations (an arch evaluated once counts once).
        seed: seeds the strategy, and the proxies unless ``proxy_seed`` is given.
        teacher: a teacher spec (None: the space's default teacher).
        teacher_weights: a state dict for the teacher.
        data: the image data spec (``embedded``, ``npz:PATH`` …).
        batch_size: images per proxy batch.
        device: ``auto``/``cpu``/``cuda``; may change on resume.
        objectives: ``proxy`` (the proxy, or the combined rank of several), any proxy name
            (maximised), ``params``/``flops`` (minimised). Single-objective strategies take one.
        max_params: the constraint, in millions of parameters (None: unconstrained).
        combine: how several proxies make one objective; only ``rank`` (mean rank).
        ask_size: architectures asked of the strategy per step, i.e. one batch of evaluation
            (None: the strategy's default). Local and Ray runs of the same ask_size agree.
        proxy_seed: the seed of the proxies' random init (None: ``seed``).
        options: keyword options of the strategy (e.g. ``{"population": 36}``).
        supernet: a trained SuperLM directory to score text students with (``superlm``
            proxy); None: the search trains one in ``OUT/supernet``.
        supernet_steps: training steps of that SuperLM (None: a default).
        supernet_init: how that SuperLM starts: ``teacher``, ``random`` or ``hf:DIR`` (None:
            the teacher when the sub-space's largest shape can be cut from it, else random).
        supernet_lr: its peak learning rate (None: the measured CPU default).
    """

    space: str = "nb201"
    proxy: str = "kd"
    strategy: str = "evolution"
    budget: int = 100
    seed: int = 0
    teacher: str | None = None
    teacher_weights: str | None = None
    data: str = "embedded"
    batch_size: int = 64
    device: str = "auto"
    objectives: tuple[str, ...] = ("proxy",)
    max_params: float | None = None
    combine: str = "rank"
    ask_size: int | None = None
    proxy_seed: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    supernet: str | None = None
    supernet_steps: int | None = None
    supernet_init: str | None = None
    supernet_lr: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.objectives, str):
            object.__setattr__(self, "objectives", tuple(o.strip() for o in self.objectives.split(",") if o.strip()))
        else:
            object.__setattr__(self, "objectives", tuple(self.objectives))
        if not isinstance(self.proxy, str):  # a list of names is accepted too
            object.__setattr__(self, "proxy", ",".join(self.proxy))
        object.__setattr__(self, "options", dict(self.options or {}))

    @property
    def proxies(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.proxy.split(",") if p.strip())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["objectives"] = list(self.objectives)
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SearchConfig":
        """The inverse of :meth:`to_dict`; unknown keys are an error (:class:`SearchKDError`)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SearchKDError(f"unknown search setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        for k, v in d.items():
            check_setting(k, v)
        return cls(**dict(d))


@dataclass(frozen=True)
class Trial:
    """One evaluated architecture: a line of ``trials.jsonl``."""

    i: int
    arch: str
    scores: dict[str, float]
    params: float
    flops: float
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"i": self.i, "arch": self.arch, "scores": {k: _num(v) for k, v in self.scores.items()},
                "params": self.params, "flops": self.flops, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], i: int | None = None) -> "Trial":
        try:
            return cls(i=int(d["i"] if i is None else i), arch=str(d["arch"]),
                       scores={str(k): float(_unnum(v)) for k, v in dict(d["scores"]).items()},
                       params=float(d["params"]), flops=float(d["flops"]), seconds=float(d.get("seconds", 0.0)))
        except (KeyError, TypeError, ValueError) as e:
            raise SearchKDError(f"not a trial record ({type(e).__name__}: {e}): {dict(d)!r:.200}") from None

    def summary(self) -> dict[str, Any]:
        """The ``best``/``pareto`` form of result.json: arch, scores, params, flops."""
        d = self.to_dict()
        return {k: d[k] for k in ("arch", "scores", "params", "flops")}


@dataclass
class SearchResult:
    """What a search found: ``result.json``.

    Attributes:
        config: the search config (a dict, as written).
        best: the best feasible trial by the first objective.
        pareto: the non-dominated trials (see :func:`searchkd.orchestrate.driver.run_search`).
        trials: how many distinct architectures were evaluated.
        seconds: wall time of the search (this run, replay included).
        searchkd_version: the version that wrote it.
        history: the trial records, when loaded with them (not written to result.json).
        student: where the chosen student was exported (a Hugging Face directory; text
            spaces searched with a SuperLM), else None (not written).
        ground_truth: the best arch's value in a ground-truth CSV, looked up after the search
            (``file``, ``column``, ``arch``, ``value``), else None (not written).
        all_nonfinite: every trial's every score was non-finite (NaN, ±inf: written as null),
            so nothing could be ranked: ``best`` is None and ``pareto`` empty (written only when true).
    """

    config: dict[str, Any]
    best: Trial | None
    pareto: list[Trial]
    trials: int
    seconds: float
    searchkd_version: str = ""
    history: list[Trial] = field(default_factory=list, repr=False)
    student: str | None = None
    ground_truth: dict[str, Any] | None = None
    #: every trial scored non-finite (a proxy that failed on every arch): ``best`` is None
    all_nonfinite: bool = False
    #: what the reader must know to read the result right (e.g. an evolution whose budget left
    #: no evolution step), one line each; written only when there are some
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {"searchkd_version": self.searchkd_version, "config": self.config,
             "best": None if self.best is None else self.best.summary(),
             "pareto": [t.summary() for t in self.pareto], "trials": self.trials, "seconds": self.seconds}
        if self.student is not None:
            d["student"] = self.student
        if self.ground_truth is not None:
            d["ground_truth"] = self.ground_truth
        if self.all_nonfinite:
            d["all_nonfinite"] = True
        if self.notes:
            d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SearchResult":
        try:
            best = d["best"]
            return cls(config=dict(d["config"]),
                       best=None if best is None else Trial.from_dict(best, i=-1),
                       pareto=[Trial.from_dict(p, i=-1) for p in d["pareto"]],
                       trials=int(d["trials"]), seconds=float(d["seconds"]),
                       searchkd_version=str(d.get("searchkd_version", "")), student=d.get("student"),
                       ground_truth=d.get("ground_truth"), all_nonfinite=bool(d.get("all_nonfinite", False)),
                       notes=[str(n) for n in d.get("notes", [])])
        except (KeyError, TypeError, ValueError) as e:
            raise SearchKDError(f"not a searchkd result ({type(e).__name__}: {e})") from None

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write ``result.json`` atomically, as strict JSON (:func:`searchkd.io.write_json`)."""
        from searchkd.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> "SearchResult":
        """Read ``result.json`` (a directory holding one is accepted too)."""
        path = Path(path)
        if path.is_dir():
            path = path / "result.json"
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise SearchKDError(f"no result file {path}") from None
        except (OSError, json.JSONDecodeError) as e:
            raise SearchKDError(f"cannot read result {path}: {e}") from None
        return cls.from_dict(d)
