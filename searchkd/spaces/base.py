"""What every search space offers, and the network interface the proxies rely on.

A space works on architectures given as canonical strings (JSON-friendly data, never
modules). ``encode``/``decode`` map them to integer vectors and back exactly, so that
vector-based optimisers (pymoo) never see the strings. ``build`` is where torch comes in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from searchkd.errors import SearchKDError

if TYPE_CHECKING:  # torch stays out of `searchkd --help`
    import torch
    from torch import nn

__all__ = ["SearchSpace", "count_cost", "cost_for", "as_rng"]


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator, a seed or None (seed 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


class SearchSpace(ABC):
    """A family of student architectures.

    Subclasses set ``name`` and ``description`` and implement the abstract methods.
    ``bounds()`` gives, per position of the encoding, the number of values it takes
    (each entry of ``encode(arch)`` lies in ``range(bounds()[i])``).
    """

    name: str = ""
    description: str = ""
    #: the default teacher (a name in the teacher registry or ``SPACE:ARCH``)
    default_teacher: str = ""

    @abstractmethod
    def sample(self, rng: np.random.Generator | int | None = None) -> str:
        """A uniformly random architecture."""

    def mutate(self, arch: str, rng: np.random.Generator | int | None = None) -> str:
        """A new architecture that differs from ``arch`` in exactly one encoded position."""
        rng = as_rng(rng)
        vec = self.encode(arch)
        bounds = self.bounds()
        choices = [i for i, b in enumerate(bounds) if b > 1]
        i = int(rng.choice(choices))
        new = int(rng.integers(bounds[i] - 1))
        vec[i] = new if new < vec[i] else new + 1
        return self.decode(vec)

    @abstractmethod
    def bounds(self) -> list[int]:
        """The number of values each encoded position takes."""

    @abstractmethod
    def encode(self, arch: str) -> list[int]:
        """The space's integer vector of ``arch`` (validates it)."""

    @abstractmethod
    def decode(self, vec: Any) -> str:
        """The inverse of :meth:`encode`."""

    def validate(self, arch: str) -> str:
        """``arch`` in canonical form; :class:`SearchKDError` when it is not of this space."""
        return self.decode(self.encode(arch))

    @abstractmethod
    def build(self, arch: str, num_classes: int = 10) -> "nn.Module":
        """The network of ``arch``: a module with ``forward_features`` (the pre-pooling map),
        ``forward_head`` and a ``classifier`` (``nn.Linear``)."""

    def cost(self, arch: str) -> dict[str, float]:
        """Parameters and FLOPs in millions (FLOPs = multiply-accumulates of one 3×32×32 image)."""
        return count_cost(self.build(arch))

    def size(self) -> int | None:
        """How many architectures the space holds (None when unbounded)."""
        return int(np.prod(self.bounds()))

    def _check_vec(self, vec: Any) -> list[int]:
        bounds = self.bounds()
        try:
            out = [int(v) for v in vec]
        except (TypeError, ValueError):
            raise SearchKDError(f"{self.name}: an encoding is a list of {len(bounds)} integers, got {vec!r}") from None
        if len(out) != len(bounds) or any(not 0 <= v < b for v, b in zip(out, bounds)):
            raise SearchKDError(
                f"{self.name}: encoding {out} out of range (length {len(bounds)}, position i in 0..bounds[i]-1, bounds {bounds})"
            )
        return out



def cost_for(space: "SearchSpace", arch: str, num_classes: int | None = None) -> dict[str, float]:
    """``space.cost(arch)`` for networks built with a ``num_classes`` head: a space whose
    ``cost`` takes ``num_classes`` answers in closed form; otherwise, when the class count
    differs from ``build``'s default head, the network is built and counted (the caller's
    torch RNG untouched). ``num_classes`` None: the space's default head."""
    import inspect

    if num_classes is None:
        return space.cost(arch)
    if "num_classes" in inspect.signature(space.cost).parameters:
        return space.cost(arch, num_classes=num_classes)
    default = inspect.signature(space.build).parameters.get("num_classes")
    if default is None or default.default in (None, num_classes):
        return space.cost(arch)
    import torch

    with torch.random.fork_rng(devices=[]):
        c = count_cost(space.build(arch, num_classes=num_classes))
    return {"params": float(c["params"]), "flops": float(c["flops"])}

def count_cost(model: "nn.Module", input_size: tuple[int, int, int] = (3, 32, 32)) -> dict[str, float]:
    """Parameters (all, in millions) and FLOPs of ``model`` by forward hooks.

    FLOPs are counted the way NAS-Bench-201 and most NAS papers report them: the
    multiply-accumulates of convolution and linear layers for one image (bias adds
    included, one per output element), in millions. BatchNorm, activations, pooling and
    additions are not counted.
    """
    import torch
    from torch import nn

    total = [0]

    def conv_hook(m: nn.Conv2d, inp: Any, out: torch.Tensor) -> None:
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total[0] += out.numel() // out.shape[0] * (k + (1 if m.bias is not None else 0))

    def linear_hook(m: nn.Linear, inp: Any, out: torch.Tensor) -> None:
        total[0] += out.numel() // out.shape[0] * (m.in_features + (1 if m.bias is not None else 0))

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return {"params": params / 1e6, "flops": total[0] / 1e6}
