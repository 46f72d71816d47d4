from __future__ import annotations

import pickle

import numpy as np
import pytest

from searchkd.data import CIFAR_MEAN, CIFAR_STD, load_images
from searchkd.errors import SearchKDError


def test_embedded_is_real_labelled_digits():
    ds = load_images("embedded")
    assert ds.x.shape == (1797, 32, 32, 3) and ds.x.dtype == np.uint8
    assert ds.num_classes == 10 and np.bincount(ds.y).min() >= 170
    # real scans: the centre of a digit is inked, the corners are blank
    assert ds.x[:, 12:20, 12:20].mean() > 4 * ds.x[:, :3, :3].mean()


def test_batches_are_seeded_normalised_and_see_every_class():
    ds = load_images("embedded")
    x1, y1 = ds.batch(64, seed=3)
    x2, y2 = ds.batch(64, seed=3)
    x3, _ = ds.batch(64, seed=4)
    assert x1.shape == (64, 3, 32, 32) and y1.dtype.is_floating_point is False
    assert (x1 == x2).all() and (y1 == y2).all() and not (x1 == x3).all()
    assert len(set(y1.tolist())) == 10
    raw = ds.x[ds.indices(64, 3)][..., 0].astype(np.float32) / 255
    assert np.allclose(x1[:, 0].numpy(), (raw - CIFAR_MEAN[0]) / CIFAR_STD[0], atol=1e-5)


def test_npz_from_shared(cifar1k):
    ds = load_images(f"npz:{cifar1k}")
    assert len(ds) == 1000 and ds.num_classes == 10
    x, _ = ds.batch(64, seed=0)
    # the CIFAR statistics normalise real CIFAR images to roughly zero mean, unit std
    assert abs(float(x.mean())) < 0.3 and 0.7 < float(x.std()) < 1.3


def test_split_is_stratified_and_disjoint():
    ds = load_images("embedded")
    train, test = ds.split(0.2, seed=1)
    assert len(train) + len(test) == len(ds)
    assert abs(len(test) - 0.2 * len(ds)) < 10
    assert np.bincount(test.y).min() > 30


def test_split_swaps_kept_images_for_the_next_of_their_class():
    from searchkd.data.images import ImageSet

    ds = ImageSet(np.zeros((10, 2, 2, 3), np.uint8), np.zeros(10, np.int64), 1, "one class")
    order = np.arange(10)
    np.random.default_rng(7).shuffle(order)  # the split's own draw, by hand
    train, test = ds.split_indices(0.3, seed=7)
    assert list(test) == sorted(order[:3]) and list(train) == sorted(order[3:])
    train, test = ds.split_indices(0.3, seed=7, keep_in_train=order[:2])
    assert list(test) == sorted(order[2:5]) and list(train) == sorted(set(range(10)) - set(order[2:5]))


def test_split_keeps_a_proxy_batch_out_of_the_held_out_part():
    ds = load_images("embedded")
    batch = ds.indices(64, seed=0)
    _, plain = ds.split_indices(0.2, seed=0)
    # the same seed shuffles each class as the proxy batch does: the whole batch would be held out
    assert np.isin(batch, plain).all()
    train, test = ds.split_indices(0.2, seed=0, keep_in_train=batch)
    assert not np.isin(batch, test).any() and np.isin(batch, train).all()
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(ds)))
    assert np.array_equal(np.bincount(ds.y[test]), np.bincount(ds.y[plain]))  # same size, same class balance
    assert len(np.setdiff1d(plain, test)) == 64  # only the batch's images were swapped
    tr_set, te_set = ds.split(0.2, seed=0, keep_in_train=batch)
    assert np.array_equal(te_set.x, ds.x[test]) and np.array_equal(tr_set.y, ds.y[train])


def _write_cifar_batch(path, n, labels_key=b"labels", rng=None):
    rng = rng or np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    with open(path, "wb") as f:
        pickle.dump({b"data": data, labels_key: list(rng.integers(0, 10, n)), b"batch_label": b"x"}, f)
    return data


def test_cifar10_python_batches(tmp_path):
    first = _write_cifar_batch(tmp_path / "data_batch_1", 7)
    for i in range(2, 6):
        _write_cifar_batch(tmp_path / f"data_batch_{i}", 3)
    _write_cifar_batch(tmp_path / "test_batch", 5)
    train = load_images(f"cifar10:{tmp_path}")
    assert len(train) == 19 and train.num_classes == 10
    # channel-major rows become HWC images
    assert (train.x[0, :, :, 1] == first[0, 1024:2048].reshape(32, 32)).all()
    assert len(load_images(f"cifar10:{tmp_path}", split="test")) == 5


def test_cifar100_python_batches(tmp_path):
    _write_cifar_batch(tmp_path / "train", 4, b"fine_labels")
    _write_cifar_batch(tmp_path / "test", 2, b"fine_labels")
    ds = load_images(f"cifar100:{tmp_path}")
    assert len(ds) == 4 and ds.num_classes == 100


def test_folder(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((40, 48, 3), 50 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = load_images(f"folder:{tmp_path}")
    assert ds.x.shape == (6, 32, 32, 3) and list(ds.y) == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("imagenet:/x", "unknown data kind 'imagenet'"),
        ("mnist", "unknown data 'mnist'"),
        ("npz:/does/not/exist.npz", "not found"),
        ("cifar10:/does/not/exist", "not found"),
    ],
)
def test_bad_specs(spec, fragment):
    with pytest.raises(SearchKDError, match=fragment):
        load_images(spec)


def test_bad_npz_files(tmp_path):
    np.savez(tmp_path / "floats.npz", x=np.zeros((2, 32, 32, 3), np.float32), y=np.zeros(2, np.int64))
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((2, 32, 32, 3), np.uint8))
    np.savez(tmp_path / "gray.npz", x=np.zeros((2, 32, 32), np.uint8), y=np.zeros(2, np.int64))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name, fragment in [("floats", "uint8"), ("nolabels", "missing"), ("gray", "N×H×W×3"), ("junk", "cannot read")]:
        with pytest.raises(SearchKDError, match=fragment):
            load_images(f"npz:{tmp_path / name}.npz")


def test_empty_folder_and_missing_cifar_files(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(SearchKDError, match="no images found"):
        load_images(f"folder:{tmp_path}")
    with pytest.raises(SearchKDError, match="missing data_batch_1"):
        load_images(f"cifar10:{tmp_path}")


def test_batch_size_errors():
    ds = load_images("embedded")
    with pytest.raises(SearchKDError, match="positive"):
        ds.batch(0)
    with pytest.raises(SearchKDError, match="exceeds"):
        ds.batch(5000)
