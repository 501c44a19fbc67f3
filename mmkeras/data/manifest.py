"""Manifests (CSV or JSONL) of file paths and labels -> batched, prefetched tf.data.

One row per example: a column per modality (a modality that ``reads_files``: a
file path, relative to, and inside, the manifest's directory; one with
``text_values``: the text itself) and a label column. An empty cell means the
modality is absent.

Everything that can be checked without running a model is checked when the
dataset is built, and a bad row is named by its line in the file: missing files,
anything that is not a regular file (FIFO, device, directory), empty or oversized
files (``stat`` only), wrongly typed files (their first and last bytes), rows with
no modality, labels that are not classes. The pipeline later reads only the file
that was checked (same inode, size and modification time), at most its size.
The returned dataset carries a :class:`Manifest` (``dataset.mmkeras_manifest``)
so that a model can name the row of a file that still fails in the graph.
"""

import csv
import json
import os

import numpy as np
import tensorflow as tf

from mmkeras.data import errors
from mmkeras.data import labels as label_codes
from mmkeras.data.files import FileCheckError, checked_problem, identity, kind_of, read_checked, stat_problem
from mmkeras.data.paths import resolve_manifest_path
from mmkeras.modalities import modality, modality_limits, modality_order, text_modality
from mmkeras.modalities.limits import MAX_TEXT_BYTES

_ROW = "mmkeras_row"  # the dataset's row index, from which files are read
# A JSONL line may hold a text of max_text_bytes plus this much (paths, label, punctuation).
_LINE_SLACK = 64 << 10


def _open_manifest(path):
    """Opens a manifest for reading text (UTF-8, a byte-order mark skipped), after checking what it is."""
    try:
        kind = kind_of(os.stat(path))
    except FileNotFoundError:
        raise ValueError(f"manifest {path!r} does not exist") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"manifest {path!r} cannot be read ({getattr(err, 'strerror', None) or err})") from None
    if kind:
        raise ValueError(f"manifest {path!r} is {kind}, not a regular file")
    # utf-8-sig: Excel writes "UTF-8 CSV" with a byte-order mark, which would otherwise start the first column name.
    return open(path, encoding="utf-8-sig", newline="")


def _jsonl_rows(path, max_text_bytes):
    """``(number, row)`` of each non-blank line of a JSONL manifest."""
    limit = max_text_bytes + _LINE_SLACK
    with _open_manifest(path) as f:
        number = 0
        while True:
            line = f.readline(limit + 1)
            if not line:
                return
            number += 1
            if len(line) > limit:
                raise ValueError(f"manifest {path!r} line {number} is longer than {limit} characters (a text cell "
                                 f"may hold max_text_bytes={max_text_bytes})")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"manifest {path!r} line {number} is not valid JSON ({err.msg}); each line must "
                                 f"be one object like {{\"image\": \"a.png\", \"label\": 3}}") from None
            except RecursionError:
                raise ValueError(f"manifest {path!r} line {number} nests JSON too deeply; each line must be one "
                                 f"flat object of columns") from None
            if not isinstance(row, dict):
                raise ValueError(f"manifest {path!r} line {number} is a JSON {type(row).__name__}, expected an "
                                 f"object of columns")
            yield number, row


def _csv_rows(path, max_text_bytes):
    """``(line number, row)`` of each row of a CSV/TSV manifest with a header."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(max_text_bytes, previous))  # a long caption is a legitimate cell
    try:
        with _open_manifest(path) as f:
            reader = csv.DictReader(f, delimiter="\t" if path.endswith(".tsv") else ",")
            try:
                for row in reader:
                    if None in row:
                        raise ValueError(f"manifest {path!r} line {reader.line_num} has more fields than the "
                                         f"header {reader.fieldnames} (a comma inside a value needs double quotes)")
                    yield reader.line_num, row
            except csv.Error as err:
                raise ValueError(f"manifest {path!r} line {reader.line_num + 1}: {err} (a text cell may hold "
                                 f"max_text_bytes={max_text_bytes})") from None
    finally:
        csv.field_size_limit(previous)


def _read_rows(path, max_text_bytes=MAX_TEXT_BYTES):
    """``(rows, line numbers)`` of a manifest; the line of each row in the file, for error messages."""
    path = os.fspath(path)
    if path.endswith((".jsonl", ".json")):
        numbered = list(_jsonl_rows(path, max_text_bytes))
    elif path.endswith((".csv", ".tsv")):
        numbered = list(_csv_rows(path, max_text_bytes))
    else:
        raise ValueError(f"manifest {path!r} must be .csv, .tsv or .jsonl")
    if not numbered:
        raise ValueError(f"manifest {path!r} has no rows")
    return [row for _, row in numbered], [number for number, _ in numbered]


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
        identities: dict ``{modality: list}``: each file's (device, inode, size,
            mtime) when it was checked, None where absent; a file is only read
            while it is still that file.
        rows: list of dict or None. The rows as read (all columns).
    """

    def __init__(self, path, columns, lines, labels=None, identities=None, rows=None):
        self.path, self.columns, self.lines, self.labels = os.fspath(path), columns, lines, labels
        self.identities, self.rows = identities or {}, rows

    def __len__(self):
        return len(self.lines)

    def where(self, i):
        """``"manifest 'train.csv' line 7"``: row ``i``'s place, for error messages."""
        return f"manifest {self.path!r} line {self.lines[i]}"

    def stat_files(self, max_bytes):
        """Records each file's identity; a ValueError names the line of a file that cannot be read.

        ``stat`` only (nothing is opened): refuses missing files, anything that is not
        a regular file (FIFO, device, directory: by kind), empty files and files over
        ``max_bytes[modality]``.
        """
        for m, files in self.columns.items():
            if not modality(m).reads_files:
                continue
            found, missing = [], []
            for i, file in enumerate(files):
                st, problem = stat_problem(file, max_bytes.get(m)) if file else (None, None)
                if problem == "does not exist":
                    missing.append(i)
                elif problem:
                    raise ValueError(f"{self.where(i)}: {m} file {file!r} {problem}")
                found.append(identity(st) if st else None)
            if missing:
                i = missing[0]
                raise ValueError(f"{self.where(i)}: {len(missing)} {m} file(s) do not exist, the first "
                                 f"{files[i]!r}")
            self.identities[m] = found

    def check_files(self):
        """Raises a ValueError naming the line and file of the first file that cannot be its modality.

        Reads the first and last 16 bytes of each file (after :meth:`stat_files`).
        """
        for m, found in self.identities.items():
            for i, (file, ident) in enumerate(zip(self.columns[m], found)):
                problem = ident and checked_problem(file, ident, m)
                if problem:
                    raise ValueError(f"{self.where(i)}: {m} file {file!r} {problem}")

    def read(self, m, i):
        """Row ``i``'s raw value of modality ``m``: the checked file's bytes (b"" if absent), or the text."""
        value = self.columns[m][i]
        if m not in self.identities:
            return value
        if not value:
            return b""
        try:
            return read_checked(value, self.identities[m][i])
        except FileCheckError as err:
            raise ValueError(f"{self.where(i)}: {m} file {value!r} {err}") from None

    def texts(self):
        """The non-empty cells of the (first) column of text values (what a text vocabulary is learned from)."""
        name = text_modality(self.columns)
        if name is None:
            raise ValueError(f"manifest {self.path!r} has no column of text values to learn a vocabulary from")
        return self.adapt_values(name)

    def adapt_values(self, name):
        """The non-empty raw values of column ``name`` (what a modality's state learns from).

        Text cells are the values; a column of files is read (each file as checked).
        """
        present = [i for i, cell in enumerate(self.columns[name]) if cell]
        return self.raw_values(name, present)

    def raw_values(self, modality, indices):
        """The raw inputs of some rows: file bytes (image, audio) or text."""
        return [self.read(modality, i) for i in indices]

    def raw_inputs(self, indices):
        """A raw input dict of some rows, as ``Task.fit``/``predict`` take it."""
        return {m: self.raw_values(m, indices) for m in self.columns}

    def read_files(self, rows, modalities):
        """In a ``tf.data`` map: the checked files of a batch of rows (``rows``: ``[B]`` int64 tensor).

        One Python call per batch (not per file) keeps the reads near the speed of
        ``tf.io.read_file``.
        """
        @tf.autograph.experimental.do_not_convert
        def read(indices):
            return [np.array(self.raw_values(m, indices.tolist()), dtype=object) for m in modalities]

        values = tf.numpy_function(read, [rows], [tf.string] * len(modalities), stateful=False)
        for v in values:
            v.set_shape(rows.shape)
        return dict(zip(modalities, values))

    def locate(self, preprocessor):
        """The message naming the first row whose preprocessing fails, or None."""
        bad = errors.locate_bad_example(preprocessor, len(self), self.raw_values)
        if bad is None:
            return None
        m, i, message = bad
        message = message.replace(f"mmkeras: input '{m}', example {i}: ", "")  # the line and file say it
        source = f"{m} file {self.columns[m][i]!r}" if m in self.identities else f"{m} {self.columns[m][i]!r}"
        return f"{self.where(i)}: {source} could not be preprocessed: {message}"


def manifest_of(dataset):
    """The :class:`Manifest` a dataset was built from by ``from_manifest``, or None."""
    return getattr(dataset, "mmkeras_manifest", None)


def _adapt_state(model, manifest, adapt):
    """Learns every modality state of ``model`` that still needs data (e.g. an empty vocabulary) from the rows."""
    pending = [m for m in model.preprocessor.unadapted() if m in manifest.columns] \
        if model.preprocessor is not None else []
    for m in pending:
        kind = modality(m)
        if not adapt:
            raise ValueError(f"model {model.name!r} has {kind.unadapted(model.preprocessor.config[m])}: call "
                             f"model.adapt({kind.adapt_argument()}) before reading {manifest.path!r}, or pass "
                             f"adapt=True to learn it from this manifest")
        values = manifest.adapt_values(m)
        if not values:
            raise ValueError(f"{manifest.path!r}: the {m} column is empty in every row, so model {model.name!r} "
                             f"cannot learn {m} preprocessing state from it; call "
                             f"model.adapt({kind.adapt_argument()})")
        model.preprocessor.adapt({m: values})


def file_limits(model, modalities):
    """``{modality: largest file or cell in bytes}``: the model's limits, else the defaults."""
    limits = model.preprocessor.limits() if model is not None and model.preprocessor is not None else {}
    return {m: modality(m).max_file_bytes(limits.get(m) or modality_limits(m)) for m in modalities}


def _cells(rows, m, manifest, max_text_bytes):
    """Column ``m`` as strings (``""`` where absent); a cell that is not text names its line."""
    values = []
    for i, row in enumerate(rows):
        value = row.get(m)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{manifest.where(i)}, column {m!r}: expected a string, got a JSON "
                             f"{type(value).__name__}")
        value = value or ""
        if len(value) > max_text_bytes // 4 and len(value.encode("utf-8")) > max_text_bytes:
            raise ValueError(f"{manifest.where(i)}, column {m!r}: {len(value.encode('utf-8'))} bytes, more than "
                             f"max_text_bytes={max_text_bytes}")
        values.append(value)
    return values


def load_manifest(path, modalities=None, model=None, check_files=True, allow_outside=False,
                  max_text_bytes=MAX_TEXT_BYTES):
    """Reads a manifest and checks its files: the :class:`Manifest` behind :func:`from_manifest`.

    Every file is ``stat``-ed (never opened) and refused by line if it does not exist,
    is not a regular file (a FIFO, a device or a directory is named), is empty or is
    over the modality's ``max_bytes``; with ``check_files``, its first and last 16
    bytes are checked too. A row whose modality cells are all empty is refused (an
    example needs at least one modality, as the exported model requires). Labels
    are not read here.

    Example:
    ```python
    manifest = load_manifest("train.csv", ["image", "text"])
    manifest.raw_inputs(range(4))  # {"image": [png bytes, ...], "text": [...]}
    ```
    """
    rows, lines = _read_rows(path, max_text_bytes)
    path = os.fspath(path)
    manifest = Manifest(path, {}, lines, rows=rows)
    root = os.path.dirname(os.path.abspath(path))
    if modalities is None:
        modalities = model.modalities if model is not None else [m for m in modality_order() if m in rows[0]]
    for m in modalities:
        if m not in rows[0]:
            raise ValueError(f"manifest {path!r} has no column {m!r}; columns are {sorted(rows[0])}")
    for m in modalities:
        values = _cells(rows, m, manifest, max_text_bytes)
        if modality(m).reads_files:
            values = [v and resolve_manifest_path(root, v, where=manifest.where(i), column=m,
                                                  allow_outside=allow_outside) for i, v in enumerate(values)]
        manifest.columns[m] = values
    empty = next((i for i in range(len(rows)) if not any(manifest.columns[m][i] for m in modalities)), None)
    if empty is not None:
        raise ValueError(f"{manifest.where(empty)}: every modality column {list(modalities)} is empty; an example "
                         f"needs at least one (the exported model refuses such examples too)")
    manifest.stat_files(file_limits(model, modalities))
    if check_files:
        manifest.check_files()
    return manifest


def from_manifest(path, modalities=None, model=None, label="label", batch_size=32, shuffle=False, seed=None,
                  class_names=None, adapt="auto", check_files=True, allow_outside=False,
                  max_text_bytes=MAX_TEXT_BYTES, augment=False):
    """Builds a batched, prefetched ``tf.data.Dataset`` from a manifest.

    Files are read in parallel by the pipeline. With ``model``, examples are
    also preprocessed (the model's one preprocessing path, per batch), and
    the dataset yields ``(features, label)``; without, it yields raw
    ``(dict of bytes/str, label)`` that ``MultimodalModel.fit`` accepts.

    Before anything runs, every file (image, audio, ...) is ``stat``-ed: it must exist,
    be a regular file (a FIFO, device or directory is refused by kind, even with
    ``check_files=False``), be non-empty and within the modality's ``max_bytes``
    (the model's limits, else the defaults); then (``check_files``) its leading
    and trailing bytes must be its modality's (PNG/JPEG/BMP/GIF, RIFF/WAVE, ...), not cut short. Every
    label is parsed. A problem raises a ValueError naming the manifest line and
    file. The pipeline reads a file only while it is the file that was checked
    (same device, inode, size and modification time) and never more than that
    size. A file that still fails to decode during training is reported by the
    model with its line (see ``Manifest.locate``).

    Args:
        path: str. ``.csv``/``.tsv`` with a header row, or ``.jsonl`` (UTF-8,
            with or without a byte-order mark).
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
        adapt: ``"auto"``, True or False. With a ``model`` whose preprocessing
            state must still learn from data (an empty text vocabulary, or any
            modality's ``needs_adapt``): learn it from this manifest's column of
            that modality (``"auto"``, True), or raise a ValueError saying what to
            call (False). Read the training manifest first.
        check_files: bool. Check every file's leading and trailing bytes now
            (reads 32 bytes per file); kind and size are always checked.
        allow_outside: bool. Accept file paths that are absolute or lead outside the
            manifest's directory (``..``, symlinks); by default they raise a ValueError
            naming the line.
        max_text_bytes: int. Largest text cell (UTF-8 bytes; default 1 MiB).
        augment: bool. Training data: with a ``model`` whose preprocessing has a
            training-only raw augmentation (e.g. audio ``waveform_augment``), apply it
            with a new seed per row every epoch (``(seed, epoch * rows + row)``).

    Example:
    ```python
    ds = mmkeras.data.from_manifest("train.csv", model=model, batch_size=64, shuffle=True)
    model.fit(ds, epochs=5)
    ```
    """
    manifest = load_manifest(path, modalities, model, check_files, allow_outside, max_text_bytes)
    rows, modalities = manifest.rows, list(manifest.columns)
    if class_names is None and model is not None and model.heads and model.heads[0].get("class_names"):
        class_names = model.heads[0]["class_names"]
    if label is not None:
        manifest.labels = _parse_labels(rows, label, class_names, model, manifest)
    if model is not None:
        _adapt_state(model, manifest, adapt)
    files = [m for m in modalities if m in manifest.identities]
    tensors = {m: tf.constant(v, tf.string) for m, v in manifest.columns.items() if m not in files}
    tensors[_ROW] = tf.range(len(rows), dtype=tf.int64)
    ds = tf.data.Dataset.from_tensor_slices(tensors if label is None else (tensors, tf.constant(manifest.labels)))
    augment = bool(augment and model is not None and model.require_preprocessor().raw_augmented())
    if augment:  # each row's seed follows it through the shuffle; the order is epoch_shuffle's
        from mmkeras.training.shuffle import epoch_example_seeds

        ds = epoch_example_seeds(ds, len(rows), seed, shuffle)
    elif shuffle:
        from mmkeras.training.shuffle import epoch_shuffle

        ds = epoch_shuffle(ds, len(rows), seed)  # epoch k's order fixed by (seed, k): exact resume

    def load(x, *rest):  # rest: the labels and/or the seeds
        read = manifest.read_files(x[_ROW], files) if files else {}
        raw = {m: read[m] if m in read else x[m] for m in modalities}
        return (raw, *rest) if rest else raw

    ds = ds.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if model is not None:
        preprocessor = model.require_preprocessor()
        fn = preprocessor.training_map_function() if augment else preprocessor.map_function()
        ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.mmkeras_manifest = manifest
    ds.mmkeras_augmented = augment
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
