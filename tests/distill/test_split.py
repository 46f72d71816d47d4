"""The distill split: seeded from its own stream, and never holding out what the proxies scored on."""

from __future__ import annotations

import numpy as np
import pytest

from searchkd.data.images import load_images
from searchkd.distill.split import load_data, proxy_batch, split_data
from searchkd.errors import SearchKDError
from searchkd.seeds import stream_seed


@pytest.fixture
def small(tmp_path) -> str:
    ds = load_images("embedded")
    idx = ds.indices(300, seed=0)
    np.savez(tmp_path / "small.npz", x=ds.x[idx], y=ds.y[idx])
    return f"npz:{tmp_path / 'small.npz'}"


def test_the_proxy_batch_is_the_searchs_when_the_data_is(small, tmp_path, monkeypatch) -> None:
    config = {"space": "resnet_cifar", "seed": 0, "proxy_seed": 5, "batch_size": 64, "data": small}
    assert proxy_batch(config, small) == (64, 5)  # the search's batch size and proxy seed
    assert proxy_batch({**config, "proxy_seed": None}, small) == (64, 0)
    monkeypatch.chdir(tmp_path)
    assert proxy_batch(config, "npz:small.npz") == (64, 5)  # the same file, named relatively
    assert proxy_batch(config, "embedded") is None


def test_the_images_the_proxies_scored_on_are_never_held_out(small) -> None:
    ds = load_images(small)
    assert len({im.tobytes() for im in ds.x}) == len(ds)  # an image tells its index
    batch = ds.indices(64, seed=5)
    scored = {ds.x[i].tobytes() for i in batch}
    train, held, moved = split_data(small, 0.2, 0, (64, 5))
    assert len(held) == 60 and not scored & {im.tobytes() for im in held.x}
    assert scored <= {im.tobytes() for im in train.x} and len(train) == 240
    # that many would have been held out by the plain split of the split's own stream
    assert moved == int(np.isin(batch, ds.split_indices(0.2, stream_seed(0, "split"))[1]).sum()) > 0
    assert [a.x.tobytes() for a in load_data(small, 0.2, 0, keep_batch=(64, 5))] == [train.x.tobytes(), held.x.tobytes()]


def test_the_split_draws_from_its_own_stream(small) -> None:
    ds = load_images(small)
    _, held = load_data(small, 0.2, 3)
    own = ds.split(0.2, stream_seed(3, "split"))[1]
    assert np.array_equal(held.x, own.x) and not np.array_equal(held.x, ds.split(0.2, 3)[1].x)


def test_nothing_left_to_hold_out(tmp_path) -> None:
    ds = load_images("embedded")
    idx = ds.indices(20, seed=0)
    np.savez(tmp_path / "tiny.npz", x=ds.x[idx], y=ds.y[idx])
    with pytest.raises(SearchKDError, match="no image is left to hold out"):
        split_data(f"npz:{tmp_path / 'tiny.npz'}", 0.2, 0, (20, 0))
