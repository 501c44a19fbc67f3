"""Manifests (CSV or JSONL) of file paths and labels -> batched, prefetched tf.data.

One row per example: a column per modality (``image``/``audio``: file path,
relative to, and inside, the manifest's directory; ``text``: the text itself)
and a label column. An empty cell means the modality is absent.
"""

import csv
import json
import os

import tensorflow as tf

from mmkeras.data.paths import resolve_manifest_path
from mmkeras.modalities import modality, modality_order


def read_manifest(path):
    """Returns the manifest rows as a list of dicts (CSV with header, or JSONL)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"manifest {path!r} does not exist")
    if path.endswith((".jsonl", ".json")):
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    elif path.endswith((".csv", ".tsv")):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ","))
    else:
        raise ValueError(f"manifest {path!r} must be .csv, .tsv or .jsonl")
    if not rows:
        raise ValueError(f"manifest {path!r} has no rows")
    return rows


def _read_or_empty(path):
    return tf.cond(tf.strings.length(path) > 0, lambda: tf.io.read_file(path), lambda: tf.constant(b""))


def from_manifest(path, modalities=None, model=None, label="label", batch_size=32, shuffle=False, seed=None,
                  class_names=None, allow_outside=False):
    """Builds a batched, prefetched ``tf.data.Dataset`` from a manifest.

    Files are read in parallel inside the graph. With ``model``, examples are
    also preprocessed (the model's one preprocessing path, per batch), and
    the dataset yields ``(features, label)``; without, it yields raw
    ``(dict of bytes/str, label)`` that ``MultimodalModel.fit`` accepts.

    Args:
        path: str. ``.csv``/``.tsv`` with a header row, or ``.jsonl``.
        modalities: list of str or None. Columns to read (default: the model's
            modalities, else every modality column present).
        model: a ``MultimodalModel`` or None.
        label: str or None. Label column (integers, or class names when
            ``class_names`` or the model's head names them); None for unlabeled data.
        batch_size: int. Batch size.
        shuffle: bool. Shuffle rows each epoch.
        seed: int or None. Shuffle seed.
        class_names: list of str or None. Maps label strings to indices.
        allow_outside: bool. Accept file paths that are absolute or lead outside the
            manifest's directory (``..``, symlinks); by default they raise a ValueError
            naming the row.

    Example:
    ```python
    ds = mmkeras.data.from_manifest("train.csv", model=model, batch_size=64, shuffle=True)
    model.fit(ds, epochs=5)
    ```
    """
    rows = read_manifest(path)
    root = os.path.dirname(os.path.abspath(os.fspath(path)))
    if modalities is None:
        modalities = model.modalities if model is not None else [m for m in modality_order() if m in rows[0]]
    for m in modalities:
        if m not in rows[0]:
            raise ValueError(f"manifest {path!r} has no column {m!r}; columns are {sorted(rows[0])}")
    columns = {}
    for m in modalities:
        values = [str(r.get(m) or "") for r in rows]
        if modality(m).reads_files:
            values = [v and resolve_manifest_path(root, v, row=i, column=m, manifest=os.fspath(path),
                                                  allow_outside=allow_outside) for i, v in enumerate(values)]
            missing = [v for v in values if v and not os.path.exists(v)]
            if missing:
                raise ValueError(f"manifest {path!r}: {len(missing)} {m} file(s) do not exist, e.g. {missing[0]!r}")
        columns[m] = values
    if class_names is None and model is not None and model.heads[0].get("class_names"):
        class_names = model.heads[0]["class_names"]
    labels = None
    if label is not None:
        labels = [_parse_label(r, label, class_names, path, i) for i, r in enumerate(rows)]
    tensors = {m: tf.constant(v, tf.string) for m, v in columns.items()}
    ds = tf.data.Dataset.from_tensor_slices(tensors if labels is None else (tensors, tf.constant(labels)))
    if shuffle:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)

    def load(x, *y):
        raw = {m: (_read_or_empty(x[m]) if modality(m).reads_files else x[m]) for m in modalities}
        return (raw, *y) if y else raw

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if model is not None:
        ds = ds.map(model.require_preprocessor().map_function(), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _parse_label(row, column, class_names, path, index):
    if column not in row:
        raise ValueError(f"manifest {path!r} row {index} has no label column {column!r}")
    value = row[column]
    if class_names is not None and str(value) in class_names:
        return class_names.index(str(value))
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"manifest {path!r} row {index}: label {value!r} is not an integer"
                         + (f" or one of {class_names}" if class_names else "")) from None
