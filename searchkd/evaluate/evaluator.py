"""Turning architectures into trial records: data + teacher + proxies in one object.

An :class:`Evaluator` is built from plain, JSON-friendly settings, so a Ray worker can
rebuild the same one from a config; it scores a batch of architectures at a time.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from searchkd.devices import resolve_device
from searchkd.errors import SearchKDError
from searchkd.types import SearchConfig

__all__ = ["EvalConfig", "Evaluator", "combine_ranks", "check_runs", "eval_config", "absolute_config"]


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides a proxy score, in JSON-friendly form."""

    space: str
    proxies: tuple[str, ...]
    teacher: str | None = None
    teacher_weights: str | None = None
    data: str = "embedded"
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    #: a trained SuperLM directory (text spaces, ``superlm`` proxy)
    supernet: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["proxies"] = list(self.proxies)
        return d


@dataclass
class Evaluator:
    """Scores architectures of one space with a fixed teacher and batch.

    The teacher is built (seeded random init, or ``teacher_weights``) and its proxy state
    prepared once, when the first architecture is scored.
    """

    config: EvalConfig
    _scorer: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from searchkd.proxies import get_proxy
        from searchkd.spaces import get_space

        self.space = get_space(self.config.space)
        if self.text:
            from searchkd.evaluate.text import check_text_proxies

            check_text_proxies(self.config.proxies, self.space)
        self.specs = [] if self.text else [get_proxy(p) for p in self.config.proxies]

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            self._scorer = self._make_scorer()
        return self._scorer

    @property
    def text(self) -> bool:
        return getattr(self.space, "modality", "image") == "text"

    def _make_scorer(self) -> Any:
        import torch

        if self.text:
            from searchkd.evaluate.text import TextScorer

            return TextScorer(self.config, self.space)

        from searchkd.data import load_images
        from searchkd.proxies import Scorer
        from searchkd.seeds import teacher_seed
        from searchkd.teachers import build_teacher

        c = self.config
        device = resolve_device(c.device)
        ds = load_images(c.data)
        batch = ds.batch(c.batch_size, seed=c.seed)
        teacher = None
        if any(s.needs_teacher for s in self.specs):
            with torch.random.fork_rng():
                torch.manual_seed(teacher_seed(c.seed))  # never the students' stream: see searchkd.seeds
                teacher = build_teacher(c.teacher, space=c.space, num_classes=ds.num_classes, weights=c.teacher_weights)
        check_runs(self.space, batch[0][:1], ds.num_classes, c.space)
        return Scorer(list(c.proxies), batch, teacher=teacher, num_classes=ds.num_classes, seed=c.seed, device=device)

    def __call__(self, archs: Sequence[str]) -> list[dict[str, Any]]:
        """One record per arch: ``arch``, ``scores``, ``params``, ``flops``, ``seconds``."""
        if self.text:
            return self.scorer.score_archs([self.space.validate(a) for a in archs])
        return [self.scorer.score_arch(self.space, self.space.validate(a)) for a in archs]

    def cost_only(self, arch: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        return {"arch": arch, **self.space.cost(arch), "seconds": time.perf_counter() - t0}


def check_runs(space: Any, images: Any, num_classes: int, name: str) -> None:
    """A :class:`SearchKDError` when a fixed small network of ``space`` cannot run on these
    images (too small for its strides, say), instead of a traceback from the first student."""
    import torch

    from searchkd.errors import first_line

    bounds = space.bounds() if hasattr(space, "bounds") else None
    if not bounds:
        return
    with torch.random.fork_rng(), torch.no_grad():
        net = space.build(space.decode([0] * len(bounds)), num_classes=num_classes)
        try:
            net.eval()(images.cpu())
        except RuntimeError as e:
            h, w = images.shape[-2:]
            raise SearchKDError(f"the {name} networks cannot run on {h}×{w} images ({first_line(e)})") from None


def combine_ranks(rows: Sequence[dict[str, float]], proxies: Sequence[str]) -> list[float]:
    """The "vote" of Abdelfattah et al. (ICLR 2021): each row's mean rank over ``proxies``
    (rank 1 = worst, ties averaged), so higher is better like every proxy."""
    import numpy as np
    from scipy.stats import rankdata

    if not rows:
        return []
    ranks = np.array([rankdata([r[p] for r in rows]) for p in proxies])
    return [float(v) for v in ranks.mean(axis=0)]


# a search config's paths made absolute (Ray Tune runs trials in other directories)
_PATH_DATA = ("npz:", "cifar10:", "cifar100:", "folder:", "text:")


def _absolute_data(data: str) -> str:
    # Ray Tune may run trials in another working directory: ship absolute paths
    for prefix in _PATH_DATA:
        if data.startswith(prefix):
            return prefix + os.path.abspath(os.path.expanduser(data[len(prefix):]))
    return data


def _abspath(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def absolute_config(config: SearchConfig) -> SearchConfig:
    """``config`` with every path absolute (data, an ``hf:DIR`` or ``nni:FILE`` teacher or
    space, teacher weights, a SuperLM directory): Ray Tune runs trials in other directories."""
    from dataclasses import replace

    from searchkd.spaces._nni_spec import absolute_spec

    def spec(s: str | None) -> str | None:
        if s and s.startswith("nni:"):
            return absolute_spec(s)
        if s and s.startswith("hf:"):
            return "hf:" + _abspath(s[3:])
        return s

    return replace(config, space=spec(config.space), teacher=spec(config.teacher), data=_absolute_data(config.data),
                   teacher_weights=_abspath(config.teacher_weights), supernet=_abspath(config.supernet))


def eval_config(config: SearchConfig) -> Any:
    """The :class:`~searchkd.evaluate.EvalConfig` of a search config (paths made absolute)."""
    c = absolute_config(config)
    return EvalConfig(space=c.space, proxies=c.proxies, teacher=c.teacher, teacher_weights=c.teacher_weights,
                      data=c.data, batch_size=c.batch_size, seed=c.seed if c.proxy_seed is None else c.proxy_seed,
                      device=c.device, supernet=c.supernet)
