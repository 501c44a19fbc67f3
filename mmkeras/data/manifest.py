"""Manifests (CSV or JSONL) of file paths and labels -> batched, prefetched tf.data.

One row per example: a column per modality (``image``/``audio``: file path,
relative to, and inside, the manifest's directory; ``text``: the text itself)
and a label column. An empty cell means the modality is absent.

Everything that can be checked without running a model is checked when the
dataset is built, and a bad row is named by its line in the file: unreadable,
empty or wrongly typed files (their leading bytes), labels that are not classes.
The returned dataset carries a :class:`Manifest` (``dataset.mmkeras_manifest``)
so that a model can name the row of a file that still fails in the graph.
"""

import csv
import json
import os

import tensorflow as tf

from mmkeras.data import errors
from mmkeras.data import labels as label_codes
from mmkeras.data.files import file_problem
from mmkeras.data.paths import resolve_manifest_path
from mmkeras.modalities import modality, modality_order


def _read_rows(path):
    """``(rows, line numbers)`` of a manifest; the line of each row in the file, for error messages."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"manifest {path!r} does not exist")
    rows, lines = [], []
    if path.endswith((".jsonl", ".json")):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"manifest {path!r} line {number} is not valid JSON ({err.msg}); each line must "
                                     f"be one object like {{\"image\": \"a.png\", \"label\": 3}}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"manifest {path!r} line {number} is a JSON {type(row).__name__}, expected an "
                                     f"object of columns")
                rows.append(row)
                lines.append(number)
    elif path.endswith((".csv", ".tsv")):
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ",")
            for row in reader:
                if None in row:
                    raise ValueError(f"manifest {path!r} line {reader.line_num} has more fields than the header "
                                     f"{reader.fieldnames} (a comma inside a value needs double quotes)")
                rows.append(row)
                lines.append(reader.line_num)
    else:
        raise ValueError(f"manifest {path!r} must be .csv, .tsv or .jsonl")
    if not rows:
        raise ValueError(f"manifest {path!r} has no rows")
    return rows, lines


def read_manifest(path):
    """Returns the manifest rows as a list of dicts (CSV with header, or JSONL)."""
    return _read_rows(path)[0]


class Manifest:
    """A manifest read into columns: the source of a ``from_manifest`` dataset.

    Attributes:
        path: str. The manifest file.
        columns: dict ``{modality: list of str}``: resolved file paths (image,
            audio) or the texts; ``""`` where absent.
        lines: list of int. Each row's line in the file.
        labels: list of int or str, or None (unlabeled).
    """

    def __init__(self, path, columns, lines, labels=None):
        self.path, self.columns, self.lines, self.labels = os.fspath(path), columns, lines, labels

    def __len__(self):
        return len(self.lines)

    def where(self, i):
        """``"manifest 'train.csv' line 7"``: row ``i``'s place, for error messages."""
        return f"manifest {self.path!r} line {self.lines[i]}"

    def check_files(self):
        """Raises a ValueError naming the line and file of the first file that cannot be its modality."""
        for m in ("image", "audio"):
            for i, file in enumerate(self.columns.get(m, ())):
                problem = file and file_problem(file, m)
                if problem:
                    raise ValueError(f"{self.where(i)}: {m} file {file!r} {problem}")

    def raw_values(self, modality, indices):
        """The raw inputs of some rows: file bytes (image, audio) or text."""
        out = []
        for i in indices:
            value = self.columns[modality][i]
            if modality in ("image", "audio") and value:
                with open(value, "rb") as f:
                    value = f.read()
            out.append(value)
        return out

    def locate(self, preprocessor):
        """The message naming the first row whose preprocessing fails, or None."""
        bad = errors.locate_bad_example(preprocessor, len(self), self.raw_values)
        if bad is None:
            return None
        m, i, message = bad
        source = f"{m} file {self.columns[m][i]!r}" if m in ("image", "audio") else f"{m} {self.columns[m][i]!r}"
        return f"{self.where(i)}: {source} could not be preprocessed: {message}"


def manifest_of(dataset):
    """The :class:`Manifest` a dataset was built from by ``from_manifest``, or None."""
    return getattr(dataset, "mmkeras_manifest", None)


def _adapt_text(model, manifest, adapt):
    if "text" not in manifest.columns or model.preprocessor is None or not model.preprocessor.needs_adapt:
        return
    if not adapt:
        raise ValueError(f"model {model.name!r} has an empty text vocabulary: call model.adapt(train_texts) "
                         f"before reading {manifest.path!r}, or pass adapt=True to learn it from this manifest")
    texts = [t for t in manifest.columns["text"] if t]
    if not texts:
        raise ValueError(f"{manifest.path!r}: the text column is empty in every row, so the text vocabulary of "
                         f"model {model.name!r} cannot be learned from it; call model.adapt(train_texts)")
    model.adapt({"text": texts})


def _read_or_empty(path):
    return tf.cond(tf.strings.length(path) > 0, lambda: tf.io.read_file(path), lambda: tf.constant(b""))


def from_manifest(path, modalities=None, model=None, label="label", batch_size=32, shuffle=False, seed=None,
                  class_names=None, adapt="auto", check_files=True, allow_outside=False):
    """Builds a batched, prefetched ``tf.data.Dataset`` from a manifest.

    Files are read in parallel inside the graph. With ``model``, examples are
    also preprocessed (the model's one preprocessing path, per batch), and
    the dataset yields ``(features, label)``; without, it yields raw
    ``(dict of bytes/str, label)`` that ``MultimodalModel.fit`` accepts.

    Before anything runs, every image/audio file is checked (exists, not empty,
    PNG/JPEG/BMP/GIF or RIFF/WAVE leading bytes, PNG/JPEG not cut short) and
    every label is parsed; a problem raises a ValueError naming the manifest
    line and file. A file that still fails to decode during training is
    reported by the model with its line (see ``Manifest.locate``).

    Args:
        path: str. ``.csv``/``.tsv`` with a header row, or ``.jsonl``.
        modalities: list of str or None. Columns to read (default: the model's
            modalities, else every modality column present).
        model: a ``MultimodalModel`` or None.
        label: str or None. Label column: class names (``class_names`` or the
            model's), or integer indices; None for unlabeled data. Without
            class names, labels that are not integers stay strings, for a
            model with class names to map in ``fit``.
        batch_size: int. Batch size.
        shuffle: bool. Shuffle rows each epoch.
        seed: int or None. Shuffle seed.
        class_names: list of str or None. Maps label strings to indices.
        adapt: ``"auto"``, True or False. With a ``model`` whose text vocabulary
            is empty: learn it from this manifest's text column (``"auto"``,
            True), or raise a ValueError saying what to call (False). Read the
            training manifest first.
        check_files: bool. Check every file's leading bytes now (reads 32 bytes
            per file).
        allow_outside: bool. Accept file paths that are absolute or lead outside the
            manifest's directory (``..``, symlinks); by default they raise a ValueError
            naming the row.

    Example:
    ```python
    ds = mmkeras.data.from_manifest("train.csv", model=model, batch_size=64, shuffle=True)
    model.fit(ds, epochs=5)
    ```
    """
    rows, lines = _read_rows(path)
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
    manifest = Manifest(path, columns, lines)
    if check_files:
        manifest.check_files()
    if class_names is None and model is not None and model.heads and model.heads[0].get("class_names"):
        class_names = model.heads[0]["class_names"]
    if label is not None:
        manifest.labels = _parse_labels(rows, label, class_names, model, manifest)
    if model is not None:
        _adapt_text(model, manifest, adapt)
    tensors = {m: tf.constant(v, tf.string) for m, v in columns.items()}
    ds = tf.data.Dataset.from_tensor_slices(tensors if label is None else (tensors, tf.constant(manifest.labels)))
    if shuffle:
        from mmkeras.training.shuffle import epoch_shuffle

        ds = epoch_shuffle(ds, len(rows), seed)  # epoch k's order fixed by (seed, k): exact resume

    def load(x, *y):
        raw = {m: (_read_or_empty(x[m]) if modality(m).reads_files else x[m]) for m in modalities}
        return (raw, *y) if y else raw

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if model is not None:
        ds = ds.map(model.require_preprocessor().map_function(), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.mmkeras_manifest = manifest
    return ds


def _parse_labels(rows, column, class_names, model, manifest):
    """Label values -> class indices (names or integers), checked against the model's head."""
    for i, row in enumerate(rows):
        if row.get(column) is None:
            raise ValueError(f"{manifest.where(i)} has no label column {column!r} (columns: {sorted(row)}); "
                             f"pass label=None for unlabeled data")
    values = [row[column] for row in rows]
    if model is None:
        if class_names is None and any(label_codes.label_index(v, None) is None for v in values):
            return [str(v) for v in values]  # names, for a model with class_names to map (checked in fit)
        return [int(v) for v in label_codes.encode(values, class_names, None, where=manifest.where)]
    heads = model.heads
    if len(heads) != 1 or heads[0]["type"] != "classification":
        raise ValueError(f"from_manifest reads one class label per row; model {model.name!r} has heads "
                         f"{[(h['name'], h['type']) for h in heads]}")
    return [int(v) for v in label_codes.encode(values, class_names, heads[0]["units"], where=manifest.where)]
