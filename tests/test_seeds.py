"""searchkd.seeds: named, independent streams derived from one seed."""

from __future__ import annotations

import numpy as np
import pytest

from searchkd.errors import SearchKDError
from searchkd.seeds import STREAMS, arch_seed, stream_seed, teacher_seed


def test_streams_differ_from_the_seed_and_from_each_other():
    for seed in range(50):
        values = {stream_seed(seed, s) for s in STREAMS} | {seed}
        assert len(values) == len(STREAMS) + 1
        assert teacher_seed(seed) == stream_seed(seed, "teacher")


def test_streams_are_stable_and_31_bit():
    # the derivation is SeedSequence([seed, stream number]); a changed constant would silently
    # change every published figure, so the value is pinned to numpy's own computation
    want = int(np.random.SeedSequence([0, STREAMS["teacher"]]).generate_state(1, dtype=np.uint32)[0]) & 0x7FFFFFFF
    assert teacher_seed(0) == want and 0 <= want < 2**31


def test_arch_seeds_depend_on_the_arch_only_through_its_string():
    a = arch_seed(3, "1-1-1")
    assert a == arch_seed(3, "1-1-1") and a != arch_seed(3, "1-1-2") and a != arch_seed(4, "1-1-1")


def test_bad_seeds_and_streams():
    with pytest.raises(SearchKDError, match="non-negative"):
        stream_seed(-1, "teacher")
    with pytest.raises(ValueError, match="unknown seed stream"):
        stream_seed(0, "nope")
