"""Every registered space honours the SearchSpace contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

import searchkd
from searchkd.registry import SPACES
from searchkd.spaces import get_space

NAMES = SPACES.names()


@pytest.mark.parametrize("name", NAMES)
def test_sample_is_valid_and_seeded(name):
    space = get_space(name)
    a = space.sample(np.random.default_rng(3))
    assert space.validate(a) == a
    assert space.sample(np.random.default_rng(3)) == a
    assert json.loads(json.dumps(a)) == a
    assert len({space.sample(np.random.default_rng(s)) for s in range(20)}) > 1


@pytest.mark.parametrize("name", NAMES)
def test_mutate_is_valid_and_different(name):
    space = get_space(name)
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = space.sample(rng)
        b = space.mutate(a, rng)
        assert b != a and space.validate(b) == b
        assert sum(x != y for x, y in zip(space.encode(a), space.encode(b))) == 1


@pytest.mark.parametrize("name", NAMES)
def test_encode_decode_round_trip(name):
    space = get_space(name)
    rng = np.random.default_rng(1)
    for _ in range(30):
        a = space.sample(rng)
        v = space.encode(a)
        assert all(0 <= x < b for x, b in zip(v, space.bounds()))
        assert space.decode(v) == a


@pytest.mark.parametrize("name", NAMES)
def test_build_forward(name):
    import torch

    space = get_space(name)
    torch.manual_seed(0)
    net = space.build(space.sample(0), num_classes=7)
    assert isinstance(net.classifier, torch.nn.Linear)
    if getattr(space, "modality", "image") == "text":  # token ids and an attention mask
        ids, mask = space.example_input(batch_size=2, seq_len=16)
        assert net(ids, mask).shape == (2, 7)
        assert net.forward_features(ids, mask).shape[:2] == (2, 16)
        return
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert net.forward_features(torch.randn(2, 3, 32, 32)).dim() == 4


@pytest.mark.parametrize("name", NAMES)
def test_build_is_deterministic_under_a_seed(name):
    import torch

    space = get_space(name)
    arch = space.sample(5)
    torch.manual_seed(11)
    a = space.build(arch).state_dict()
    torch.manual_seed(11)
    b = space.build(arch).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_public_api_lists_spaces():
    assert set(searchkd.list_spaces()) >= {"nb201", "resnet_cifar", "bert-tiny", "bert-small", "bert-base"}
    assert searchkd.get_space("nb201").name == "nb201"
