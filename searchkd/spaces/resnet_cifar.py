"""CIFAR ResNets with basic blocks (He et al., "Deep Residual Learning for Image
Recognition", CVPR 2016, §4.2), the family DisWOT searches for ResNet-20-sized students.

An arch is ``A-B-C``: the number of basic blocks in the 16-, 32- and 64-channel stages.
``3-3-3`` is ResNet-20 (0.27 M parameters), ``9-9-9`` ResNet-56 (0.85 M), ``18-18-18``
ResNet-110 (1.7 M). Shortcuts are the paper's option A: identity, and at a stage change
a stride-2 subsampling zero-padded to the new width, so shortcuts add no parameters.

Students take 1..9 blocks per stage (729 archs; DisWOT's family is {1,3,5,7}³); the
teachers ``resnet56`` and ``resnet110`` are registered by name and parse as archs too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from searchkd.errors import SearchKDError
from searchkd.registry import SPACES
from searchkd.spaces.base import SearchSpace, as_rng

__all__ = ["ResNetCifarSpace", "parse_blocks"]

WIDTHS = (16, 32, 64)
MAX_STUDENT_BLOCKS = 9


def parse_blocks(arch: str, max_blocks: int = 64) -> tuple[int, int, int]:
    """``"A-B-C"`` → (A, B, C), each an integer in 1..max_blocks."""
    if not isinstance(arch, str):
        raise SearchKDError(f"resnet_cifar: an arch is a string A-B-C, got {type(arch).__name__}")
    parts = arch.split("-")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):  # int() takes "٣", not "²"
        raise SearchKDError(f"resnet_cifar: malformed arch {arch!r}: expected A-B-C, blocks per stage, e.g. 3-3-3")
    blocks = tuple(int(p) for p in parts)
    if not all(1 <= b <= max_blocks for b in blocks):
        raise SearchKDError(f"resnet_cifar: blocks per stage must be in 1..{max_blocks}, got {arch!r}")
    return blocks  # type: ignore[return-value]


class ResNetCifarSpace(SearchSpace):
    """CIFAR basic-block ResNets ``A-B-C`` (widths 16/32/64, option-A shortcuts)."""

    name = "resnet_cifar"
    description = "CIFAR basic-block ResNets A-B-C (1..9 blocks per stage, widths 16/32/64)"
    default_teacher = "resnet56"

    def sample(self, rng: np.random.Generator | int | None = None) -> str:
        rng = as_rng(rng)
        return self.decode(rng.integers(MAX_STUDENT_BLOCKS, size=3))

    def bounds(self) -> list[int]:
        return [MAX_STUDENT_BLOCKS] * 3

    def encode(self, arch: str) -> list[int]:
        blocks = parse_blocks(arch)
        if max(blocks) > MAX_STUDENT_BLOCKS:
            raise SearchKDError(
                f"resnet_cifar: {arch!r} is outside the student space (1..{MAX_STUDENT_BLOCKS} blocks per stage); "
                "it can still be built as a teacher"
            )
        return [b - 1 for b in blocks]

    def decode(self, vec: Any) -> str:
        return "-".join(str(v + 1) for v in self._check_vec(vec))

    def validate(self, arch: str) -> str:
        return "-".join(map(str, parse_blocks(arch)))

    def cost(self, arch: str, num_classes: int = 10) -> dict[str, float]:
        """Closed form (equal to hook counting on the built network, see tests)."""
        blocks = parse_blocks(arch)
        params = 3 * 16 * 9 + 2 * 16 + 64 * num_classes + num_classes
        macs = 3 * 16 * 9 * 32 * 32 + 64 * num_classes + num_classes
        c_prev = 16
        for n, c, side in zip(blocks, WIDTHS, (32, 16, 8)):
            for i in range(n):
                c_in = c_prev if i == 0 else c
                params += 9 * c_in * c + 9 * c * c + 4 * c
                macs += (9 * c_in * c + 9 * c * c) * side * side
            c_prev = c
        return {"params": params / 1e6, "flops": macs / 1e6}

    def build(self, arch: str, num_classes: int = 10) -> Any:
        from searchkd.spaces._resnet_net import CifarResNet

        return CifarResNet(parse_blocks(arch), num_classes=num_classes)


SPACES.register("resnet_cifar", ResNetCifarSpace, description=ResNetCifarSpace.description)
