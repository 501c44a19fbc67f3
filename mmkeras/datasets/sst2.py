"""SST-2 (binary Stanford Sentiment Treebank) sentences and labels, as raw text."""

import numpy as np

from mmkeras.datasets import _download

SPLITS = ("train", "dev", "test")

SST2_SHA256 = {
    "train": "e981ceb4fe6c9acd1c79851d0d091b9e78103f1f2a399ca83dda27915d41c56c",
    "dev": "84207e6be5873fb18db798cc6faec86871f5a426554650ff64a1c34e87665f6f",
    "test": "fcd46f967b7b8efd8b5398481dadf873886298d092195167af907fd532e81e1c",
}
# GLUE SST-2 train/dev plus the labelled sentence-level test split, as packaged in
# github.com/awake020/pytorch_Bert_sst2 at commit ce2ab171. The sums above pin the
# exact bytes, so a wrong or changed file is refused rather than silently used.
SST2_URL = "https://raw.githubusercontent.com/awake020/pytorch_Bert_sst2/ce2ab171/SST-2/{split}.tsv"

# train.tsv says "sentence" (and uses CRLF line ends); dev.tsv and test.tsv say "content".
_TEXT_COLUMNS = ("sentence", "content")


def _parse_tsv(raw, path):
    lines = raw.decode("utf-8").split("\n")
    # Only "\n" separates rows: str.splitlines would also split on U+2028 etc.
    lines = [line.removesuffix("\r") for line in lines]
    header = lines[0].split("\t")
    if len(header) != 2 or header[0] != "label" or header[1] not in _TEXT_COLUMNS:
        raise ValueError(f"mmkeras: unexpected header {lines[0]!r} in {path}")
    texts, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        label, sep, text = line.partition("\t")
        if not sep or label not in ("0", "1"):
            raise ValueError(f"mmkeras: malformed row {number} in {path}: {line[:80]!r}")
        labels.append(int(label))
        texts.append(text)
    return np.array(texts, dtype=object), np.array(labels, dtype=np.int64)


def sst2(split="train", data_dir=None, download=None):
    """Loads one SST-2 split as raw sentences and binary labels.

    Rows: train 67,349, dev 872, test 1,821 (the labelled sentence-level test
    split; Kim (2014) reports 87.2-88.1% accuracy on it). Labels: 0 negative,
    1 positive. The file's sha256 is checked (once per process per file state).

    Args:
        split: "train", "dev" or "test".
        data_dir: folder holding `sst2/{split}.tsv`; defaults to
            `$MMKERAS_DATA_DIR`, else `~/.cache/mmkeras/data`.
        download: True to fetch a missing file, False never, None (default)
            only into the default per-user cache.

    Returns:
        `(x, y)`: `x = {"text": object array of str}`, `y` int64 array.

    Raises:
        FileNotFoundError: the file is missing (names the directory and file).
        ValueError: unknown split, or sha256 mismatch (names the file and both sums).

    Example:
    ```python
    x, y = mmkeras.datasets.sst2("dev", data_dir="../shared/data")
    x["text"][0], y[0]  # ('one long string of cliches .', 0)
    ```
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root, is_default = _download.resolve_data_dir(data_dir)
    path = _download.ensure_file(
        root, f"sst2/{split}.tsv", SST2_SHA256[split], url=SST2_URL.format(split=split),
        download=_download.download_allowed(download, is_default))
    texts, labels = _parse_tsv(path.read_bytes(), path)
    return {"text": texts}, labels


def sst2_dataset(split="train", data_dir=None, batch_size=None, shuffle=False, seed=None,
                 download=None):
    """SST-2 as a `tf.data.Dataset` of `({"text": tf.string}, int64 label)`.

    Args:
        split: as in `sst2`.
        data_dir: as in `sst2`.
        download: as in `sst2`.
        batch_size: int to batch (last batch may be smaller), or None.
        shuffle: shuffle examples (full buffer) before batching, anew each epoch.
        seed: shuffle seed, for a reproducible order.

    Returns:
        `tf.data.Dataset` of raw UTF-8 strings and labels.

    Example:
    ```python
    ds = mmkeras.datasets.sst2_dataset("dev", batch_size=64, data_dir="../shared/data")
    ```
    """
    x, y = sst2(split, data_dir, download)
    return _download.to_dataset(x, y, batch_size, shuffle, seed)
