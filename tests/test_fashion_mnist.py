"""The Fashion-MNIST loader: IDX parsing, few-shot selection, checksums, where it looks, its errors.

Synthetic IDX files (with their sums put in the loader's table) test the parsing on
any machine; the real files are read where Debian's ``dataset-fashion-mnist`` is
installed.
"""

import gzip
import hashlib
import importlib
import io

import numpy as np
import pytest
from PIL import Image

from mmkeras.datasets import fashion_mnist

module = importlib.import_module("mmkeras.datasets.fashion_mnist")


def _write_idx(folder, split, images, labels, magic=2051):
    prefix = module._PREFIX[split]
    files = {
        f"{prefix}-images-idx3-ubyte.gz": np.array([magic, *images.shape], ">i4").tobytes() + images.tobytes(),
        f"{prefix}-labels-idx1-ubyte.gz": np.array([2049, len(labels)], ">i4").tobytes()
        + labels.astype(np.uint8).tobytes(),
    }
    sums = {}
    for name, raw in files.items():
        (folder / name).write_bytes(gzip.compress(raw))
        sums[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return sums


@pytest.fixture
def synthetic(tmp_path, monkeypatch):
    """A test split of 30 images (3 per class, labels in a shuffled order) under tmp_path/fashion-mnist."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = rng.permutation(np.repeat(np.arange(10), 3))
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    monkeypatch.setattr(module, "SHA256", {**module.SHA256, **_write_idx(folder, "test", images, labels)})
    return tmp_path, images, labels


def _decode(png):
    return np.asarray(Image.open(io.BytesIO(png)))


def test_reads_idx_files_into_lossless_pngs(synthetic):
    root, images, labels = synthetic
    x, y = fashion_mnist("test", data_dir=root)  # the fashion-mnist/ subfolder is found
    assert list(x) == ["image"] and len(x["image"]) == 30
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64
    for i in (0, 17, 29):
        np.testing.assert_array_equal(_decode(x["image"][i]), images[i])
    arrays, arr_labels = module.fashion_mnist_arrays("test", data_dir=root / "fashion-mnist")
    np.testing.assert_array_equal(arrays, images)


def test_per_class_keeps_file_order_and_limit_cuts(synthetic):
    root, images, labels = synthetic
    x, y = fashion_mnist("test", data_dir=root, per_class=2)
    assert np.bincount(y, minlength=10).tolist() == [2] * 10
    expected = np.sort(np.concatenate([np.flatnonzero(labels == c)[:2] for c in range(10)]))
    np.testing.assert_array_equal(y, labels[expected])
    np.testing.assert_array_equal(_decode(x["image"][0]), images[expected[0]])
    x, y = fashion_mnist("test", data_dir=root, limit=5)
    np.testing.assert_array_equal(y, labels[:5])


def test_tampered_file_names_the_file_and_both_sums(synthetic, monkeypatch):
    root, _, _ = synthetic
    path = root / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 8))
    expected = module.SHA256[path.name]
    with pytest.raises(ValueError) as info:
        fashion_mnist("test", data_dir=root)
    message = str(info.value)
    assert str(path) in message and expected in message
    assert hashlib.sha256(path.read_bytes()).hexdigest() in message


def test_wrong_magic_is_named(tmp_path, monkeypatch):
    images = np.zeros((2, 28, 28), np.uint8)
    monkeypatch.setattr(module, "SHA256", {**module.SHA256, **_write_idx(tmp_path, "test", images,
                                                                          np.array([0, 1]), magic=1234)})
    with pytest.raises(ValueError, match="not an IDX file with magic 2051 .got 1234."):
        fashion_mnist("test", data_dir=tmp_path)


def test_missing_files_say_where_it_looked_and_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKERAS_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(module, "DEBIAN_DIR", tmp_path / "debian")
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist("train", data_dir=tmp_path / "mine")
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "apt-get install dataset-fashion-mnist" in message
    for folder in ("mine", "cache", "debian"):
        assert str(tmp_path / folder) in message
    with pytest.raises(ValueError, match="split must be one of"):
        fashion_mnist("validation")


@pytest.mark.skipif(not module.DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_test_split_from_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("MMKERAS_DATA_DIR", str(tmp_path))  # nothing there: the Debian folder answers
    images, labels = module.fashion_mnist_arrays("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10  # the published test split is balanced
    x, y = fashion_mnist("test", per_class=1)
    assert len(y) == 10 and sorted(y.tolist()) == list(range(10))
    np.testing.assert_array_equal(_decode(x["image"][0]), images[np.flatnonzero(labels == y[0])[0]])
