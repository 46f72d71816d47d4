"""The proxy interface and the one engine that runs proxies.

A proxy is a function ``fn(net, batch, state) -> float`` (higher is better) registered
with :func:`register_proxy`. ``net`` is a freshly initialised copy of the student that
the proxy may change at will (the engine never reuses it); ``batch`` is an
``(images, labels)`` pair on the device; ``state`` is what the proxy's ``prepare``
computed once from the teacher and the batch (None for teacher-free proxies).

The engine (:class:`Scorer`) is where the guarantees live: the teacher-dependent state
is computed once and reused for every student; the caller's torch RNG and the teacher's
weights are left untouched; a non-finite result becomes :data:`WORST` and is counted.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from searchkd.errors import SearchKDError
from searchkd.registry import PROXIES

__all__ = ["ProxySpec", "register_proxy", "get_proxy", "Scorer", "WORST", "Batch"]

#: the value a proxy gets where it yields NaN/inf (all-``none`` cells, overflow)
WORST = -math.inf
Batch = tuple  # (images: Tensor B×3×H×W, labels: Tensor B)


@dataclass(frozen=True)
class ProxySpec:
    """A registered proxy.

    Attributes:
        name: the registry name.
        fn: ``fn(net, batch, state) -> float``.
        needs_teacher: whether ``prepare`` needs a teacher network.
        prepare: ``prepare(teacher, batch) -> state``, run once per teacher and batch.
        needs_data: False for proxies that ignore the images (synflow, params, flops).
        description: one line for ``searchkd list proxies``.
    """

    name: str
    fn: Callable[..., float]
    needs_teacher: bool = False
    prepare: Callable[..., Any] | None = None
    needs_data: bool = True
    description: str = ""


def register_proxy(name: str, *, needs_teacher: bool = False, prepare: Callable[..., Any] | None = None,
                   needs_data: bool = True, description: str | None = None) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator: register ``fn(net, batch, state) -> float`` as proxy ``name``."""

    def deco(fn: Callable[..., float]) -> Callable[..., float]:
        desc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        PROXIES.register(name, ProxySpec(name, fn, needs_teacher, prepare, needs_data, desc), description=desc)
        return fn

    return deco


def get_proxy(name: str) -> ProxySpec:
    """The proxy registered as ``name``. Every proxy is registered: importing this module imports
    :mod:`searchkd.proxies` first, whose ``__init__`` imports each proxy's file."""
    return PROXIES.get(name)


@dataclass
class Scorer:
    """Scores student networks with several proxies against one teacher and one batch.

    Args:
        proxies: proxy names.
        batch: ``(images, labels)``; moved to ``device``.
        teacher: the teacher network (needed when any proxy needs one); never modified.
        num_classes: the label count students are built with (default: the teacher's
            classifier outputs, else ``max(label) + 1``).
        seed: the students' initialisation and the proxies' own randomness; a ``prepare``
            that re-initialises the teacher draws from the independent teacher stream
            (:func:`searchkd.seeds.teacher_seed`), never from ``seed`` itself.
        device: a torch device or name.
    """

    proxies: Sequence[str]
    batch: Batch
    teacher: Any = None
    num_classes: int | None = None
    seed: int = 0
    device: Any = "cpu"
    nonfinite: dict[str, int] = field(default_factory=dict)
    #: seconds spent in each proxy (its copy of the student and its computation), summed
    seconds: dict[str, float] = field(default_factory=dict)
    _states: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        import torch

        self.specs = [get_proxy(p) for p in self.proxies]
        if not self.specs:
            raise SearchKDError("no proxy given")
        images, labels = self.batch
        if images.shape[0] == 0:
            raise SearchKDError("the batch is empty")
        self.device = torch.device(self.device)
        self.batch = (images.to(self.device), labels.to(self.device))
        head = getattr(self.teacher, "classifier", None)
        if self.num_classes is None:
            self.num_classes = head.out_features if head is not None else int(labels.max()) + 1
        if int(labels.max()) >= self.num_classes:
            raise SearchKDError(f"labels go up to {int(labels.max())} but the networks have {self.num_classes} classes")
        if head is not None and head.out_features != self.num_classes:
            raise SearchKDError(
                f"the teacher has {head.out_features} classes but the students get {self.num_classes}: class counts must match"
            )
        for spec in self.specs:
            if spec.needs_teacher:
                if self.teacher is None:
                    raise SearchKDError(f"proxy {spec.name!r} needs a teacher")
                self._states[spec.name] = self._prepare(spec)

    def _prepare(self, spec: ProxySpec) -> Any:
        import torch

        from searchkd.seeds import teacher_seed

        teacher = copy.deepcopy(self.teacher).to(self.device)  # the caller's teacher stays untouched
        with torch.random.fork_rng(devices=_rng_devices(self.device)):
            torch.manual_seed(teacher_seed(self.seed))  # a re-initialising prepare never repeats a student's draw
            return spec.prepare(teacher, self.batch) if spec.prepare else None

    def check_student(self, net: Any) -> None:
        head = getattr(net, "classifier", None)
        if head is None or not hasattr(net, "forward_features"):
            raise SearchKDError("a student must expose forward_features() and a linear `classifier` (see searchkd.spaces)")
        if head.out_features != self.num_classes:
            raise SearchKDError(f"the student has {head.out_features} classes, the teacher/batch {self.num_classes}")

    def score_net(self, net: Any) -> dict[str, float]:
        """All proxies of one student (a module; each proxy gets its own copy)."""
        self.check_student(net)
        return self._score(lambda: copy.deepcopy(net))

    def _score(self, fresh: Callable[[], Any], last: Any = None) -> dict[str, float]:
        """Run every proxy on its own student: ``fresh()`` makes one; ``last``, when given, is
        an owned student that the last proxy may take instead of a new one."""
        import torch

        out: dict[str, float] = {}
        for i, spec in enumerate(self.specs):
            t0 = time.perf_counter()
            student = (last if last is not None and i == len(self.specs) - 1 else fresh()).to(self.device)
            with torch.random.fork_rng(devices=_rng_devices(self.device)):
                torch.manual_seed(self.seed)
                try:
                    value = float(spec.fn(student, self.batch, self._states.get(spec.name)))
                except FloatingPointError:
                    value = math.nan
            if not math.isfinite(value):
                self.nonfinite[spec.name] = self.nonfinite.get(spec.name, 0) + 1
                warnings.warn(f"proxy {spec.name} gave {value}; scored as the worst value", RuntimeWarning, stacklevel=3)
                value = WORST
            out[spec.name] = value
            self.seconds[spec.name] = self.seconds.get(spec.name, 0.0) + time.perf_counter() - t0
        return out

    def score_arch(self, space: Any, arch: str) -> dict[str, Any]:
        """Build ``arch`` of ``space`` with the seeded default init and score it.

        Each proxy gets its own build under the same seed (bitwise the same weights as a
        copy, and cheaper to make than a ``deepcopy``); the last takes the first.
        """
        import torch

        def build() -> Any:
            with torch.random.fork_rng(devices=_rng_devices(self.device)):
                torch.manual_seed(self.seed)
                return space.build(arch, num_classes=self.num_classes)

        t0 = time.perf_counter()
        net = build()
        self.check_student(net)
        scores = self._score(build, last=net)
        from searchkd.spaces import cost_for

        return {"arch": arch, "scores": scores, **cost_for(space, arch, self.num_classes),
                "seconds": time.perf_counter() - t0}


def _rng_devices(device: Any) -> list[Any]:
    return [device] if getattr(device, "type", str(device)).startswith("cuda") else []
