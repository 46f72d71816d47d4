"""The standard CIFAR training augmentation, on whole batches in plain torch.

Random crop after zero padding (4 pixels) and random horizontal flip, the recipe of
He et al. (2016) that every CIFAR KD paper trains with. The random draws come from a
seeded CPU :class:`torch.Generator`, so a batch's augmentation is the same on any device
and is restored exactly by saving the generator's state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_crop_flip"]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4,
                     flip: bool = True) -> torch.Tensor:
    """Per image: pad ``padding`` zeros on every side, crop back to H×W at a random offset,
    and mirror left-right with probability ½.

    Args:
        x: B×C×H×W images, before normalisation (zero padding is black, as in torchvision).
        generator: a CPU generator; this call draws 2·B offsets, then B coin flips from it.
    """
    b, c, h, w = x.shape
    dev = x.device
    offs = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    if padding:
        xp = F.pad(x, (padding, padding, padding, padding))
        rows = (offs[:, 0:1] + torch.arange(h)).to(dev)  # B×H
        cols = (offs[:, 1:2] + torch.arange(w)).to(dev)  # B×W
        bi = torch.arange(b, device=dev)[:, None, None, None]
        ci = torch.arange(c, device=dev)[None, :, None, None]
        x = xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        x = torch.where(flips.to(dev)[:, None, None, None], x.flip(3), x)
    return x
