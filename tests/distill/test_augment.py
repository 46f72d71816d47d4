"""Batch random crop + flip: shapes, determinism, and that both actually happen."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from searchkd.distill.augment import random_crop_flip


def _batch() -> torch.Tensor:
    return torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_shape_dtype_and_determinism() -> None:
    x = _batch()
    a = random_crop_flip(x, torch.Generator().manual_seed(5))
    b = random_crop_flip(x, torch.Generator().manual_seed(5))
    c = random_crop_flip(x, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_flips_happen_and_are_exact_mirrors() -> None:
    x = _batch()
    out = random_crop_flip(x, torch.Generator().manual_seed(1), padding=0)
    flipped = [bool(torch.equal(o, i.flip(2))) for o, i in zip(out, x)]
    kept = [bool(torch.equal(o, i)) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 4 < sum(flipped) < 28  # about half of 32


def test_crops_are_shifted_windows_of_the_zero_padded_image() -> None:
    x = _batch()
    out = random_crop_flip(x, torch.Generator().manual_seed(2), padding=4, flip=False)
    pad = F.pad(x, (4, 4, 4, 4))
    offsets = []
    for o, p in zip(out, pad):
        hits = [(r, c) for r in range(9) for c in range(9) if torch.equal(o, p[:, r:r + 8, c:c + 8])]
        assert hits, "every output is a window of the padded image"
        offsets.append(hits[0])
    assert len(set(offsets)) > 5 and any(off != (4, 4) for off in offsets)
    assert (out == 0).any()  # some padding came in
