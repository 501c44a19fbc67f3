"""Fashion-MNIST (Zalando's 28x28 grayscale clothing images, 10 classes) as raw PNG bytes.

The four IDX files (``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``) are read from,
in order: ``data_dir`` (the files themselves, or a ``fashion-mnist/`` subfolder), the
mmkeras data directory's ``fashion-mnist/`` (``$MMKERAS_DATA_DIR``), and the folder
Debian's ``dataset-fashion-mnist`` package installs (``apt-get install dataset-fashion-mnist``:
``/usr/share/datasets/fashion-mnist``). Nothing is downloaded; every file's sha256 is checked.
"""

import gzip
from pathlib import Path

import numpy as np

from mmkeras.codecs import encode_png
from mmkeras.datasets import _download

SPLITS = ("train", "test")
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_PREFIX = {"train": "train", "test": "t10k"}
SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


def _folders(data_dir):
    if data_dir is not None:
        yield Path(data_dir).expanduser()
        yield Path(data_dir).expanduser() / "fashion-mnist"
    root, _ = _download.resolve_data_dir(None)
    yield root / "fashion-mnist"
    yield DEBIAN_DIR


def _find(filename, data_dir):
    searched = []
    for folder in _folders(data_dir):
        if (folder / filename).is_file():
            _download.verify_file(folder / filename, SHA256[filename])
            return folder / filename
        searched.append(str(folder))
    raise FileNotFoundError(f"mmkeras: Fashion-MNIST file {filename} not found in {searched}; install Debian's "
                            "package (apt-get install dataset-fashion-mnist) or pass data_dir=<folder with the "
                            "four .gz files>")


def _read_idx(path, magic, header_ints):
    data = gzip.decompress(path.read_bytes())
    header = np.frombuffer(data[: 4 * header_ints], ">i4")
    if header[0] != magic:
        raise ValueError(f"mmkeras: {path} is not an IDX file with magic {magic} (got {int(header[0])})")
    return header, np.frombuffer(data[4 * header_ints:], np.uint8)


def fashion_mnist_arrays(split="train", data_dir=None):
    """One split as arrays: ``(images [N, 28, 28] uint8, labels [N] int64)`` (60,000 train, 10,000 test).

    Example:
    ```python
    images, labels = fashion_mnist_arrays("test")  # (10000, 28, 28), (10000,)
    ```
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    header, pixels = _read_idx(_find(f"{_PREFIX[split]}-images-idx3-ubyte.gz", data_dir), 2051, 4)
    images = pixels.reshape(int(header[1]), int(header[2]), int(header[3]))
    _, labels = _read_idx(_find(f"{_PREFIX[split]}-labels-idx1-ubyte.gz", data_dir), 2049, 2)
    if len(labels) != len(images):
        raise ValueError(f"mmkeras: Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels")
    return images, labels.astype(np.int64)


def fashion_mnist(split="train", data_dir=None, limit=None, per_class=None):
    """One split as raw examples: ``({"image": PNG bytes}, labels)``.

    Args:
        split: "train" or "test".
        data_dir: folder with the four ``.gz`` files (or a ``fashion-mnist/`` subfolder);
            see the module docstring for where else it looks.
        limit: int or None. Keep the first ``limit`` examples.
        per_class: int or None. Keep the first ``per_class`` examples of each class
            (in file order), for few-shot training sets.

    Returns:
        ``(x, y)``: ``x = {"image": object array of PNG bytes}``, ``y`` int64 labels.

    Example:
    ```python
    x, y = mmkeras.datasets.fashion_mnist("train", per_class=100)  # 1,000 images, 100 of each class
    ```
    """
    images, labels = fashion_mnist_arrays(split, data_dir)
    keep = np.arange(len(labels))
    if per_class is not None:
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(len(CLASS_NAMES))]))
    if limit is not None:
        keep = keep[:limit]
    pngs = np.empty(len(keep), dtype=object)
    pngs[:] = [encode_png(images[i][..., None]) for i in keep]
    return {"image": pngs}, labels[keep]
