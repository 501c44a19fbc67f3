"""Raw inputs -> batched features in ``tf.data``: the machinery every task shares.

A task (:class:`~mmkeras.models.Task`) accepts raw examples (image bytes, WAV
bytes, UTF-8 text) in ``fit``/``evaluate``/``predict``. This module turns them
into feature batches with the task's preprocessor, the same function the
exported SavedModel runs:

- raw dicts, manifest files (CSV/JSONL), raw or feature ``tf.data`` datasets and
  feature dicts; labels checked (class names mapped) on every path;
- validation of raw dicts and labels before any TensorFlow runs (errors name the input);
- preprocessing state (the text vocabulary, any modality's ``adapt``) learned from
  training data only (evaluation data never teaches it);
- ``make_dataset``: batch raw strings, then a parallel map of the preprocessor's
  batch function; with ``cache`` everything is preprocessed once and batches are
  sliced from in-memory features (:func:`in_memory_dataset`), as Keras does for arrays
  (with a training-only raw augmentation, only the modalities it leaves alone);
- ``validation_split`` on raw inputs (the last fraction, as Keras does);
- multi-worker sharding (one hook, logic in :mod:`mmkeras.distribute.sharding`);
- error localisation: when a batch fails, the first bad example (or manifest row)
  is found eagerly and re-raised as a ValueError naming the input and the example;
- a direct-predict graph for small raw inputs (milliseconds, no pipeline).

Data flows one way: raw inputs -> this module -> the preprocessor -> the model.
:class:`RawInputs` reads what it needs from a task's public description once
(modalities, preprocessor, heads, batch size, seed, strategy, label rule) and
returns values: ``prepare_fit``/``prepare_evaluate``/``prepare_predict`` give a
:class:`Prepared` (what Keras gets, and how to name a bad example), and the task
itself calls Keras, records its validation data and caches its direct-predict
graph. Nothing here writes to a task or calls its Keras entry points.
"""

import contextlib
import dataclasses
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from mmkeras.data import errors as data_errors
from mmkeras.data import labels as label_codes
from mmkeras.data import raw as raw_checks
from mmkeras.modalities import modality
from mmkeras.preprocessing.preprocessor import present_key
from mmkeras.training.shuffle import epoch_example_seeds, epoch_shuffle


class RawAugmentationWarning(UserWarning):
    """A fit whose training inputs cannot take the preprocessor's training-only raw augmentation."""


# Up to this many raw examples, predict skips building a tf.data pipeline per call.
DIRECT_PREDICT_MAX = 256


def in_memory_dataset(data, n, batch_size, shuffle=False, seed=None):
    """Batches of in-memory arrays, sliced by (shuffled) index batches, as Keras does for arrays.

    Shuffling ``n`` integers and gathering a batch is much cheaper than shuffling
    ``n`` feature dicts element by element.

    Example:
    ```python
    ds = in_memory_dataset((features, labels), n=len(labels), batch_size=64, shuffle=True, seed=0)
    ```
    """
    index = tf.data.Dataset.range(n)
    if shuffle:
        index = epoch_shuffle(index, n, seed)  # epoch k's order fixed by (seed, k): exact resume
    whole = tf.data.Dataset.from_tensors(data).repeat()
    ds = tf.data.Dataset.zip(index.batch(batch_size), whole)
    ds = ds.map(lambda i, d: tf.nest.map_structure(lambda a: tf.gather(a, i), d),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _feature_arrays(x):
    """Whether ``x`` is a dict of in-memory model features (``present`` included)."""
    return isinstance(x, dict) and "present" in x and all(isinstance(v, np.ndarray) for v in x.values())


def _take(value, part):
    """``value[part]`` for an array, a list or a dict of them (labels of several heads)."""
    if isinstance(value, dict):
        return {k: _take(v, part) for k, v in value.items()}
    return np.asarray(value)[part]


def materialise(dataset, num_examples=None, verbose=0):
    """Runs a dataset of feature dicts to the end; returns the concatenated numpy features.

    The one way raw inputs become in-memory features (``Task.preprocess``, the
    ``fit(cache=True)`` path and evaluation all use it).

    Args:
        dataset: a ``tf.data.Dataset`` of feature dicts.
        num_examples: int or None. For the progress bar.
        verbose: 0, 1 (progress bar) or 2 (one line) while the examples are preprocessed.
    """
    bar = None
    if verbose and num_examples:
        print(f"Preprocessing {num_examples} raw examples (once; the features are kept in memory)")
        bar = keras.utils.Progbar(num_examples, verbose=1 if verbose in (1, "auto") else 2, unit_name="example")
    batches, done = [], 0
    for batch in dataset:
        batches.append({k: v.numpy() for k, v in batch.items()})
        done += len(next(iter(batches[-1].values())))
        if bar is not None:
            bar.update(done, finalize=done >= num_examples)
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _dataset_values(dataset, name):
    """Modality ``name``'s raw value of every example of a raw dataset (batched or not), as a dataset of strings."""
    values = dataset.map(lambda x, *_: x[name])
    return values.unbatch() if values.element_spec.shape.rank else values


@contextlib.contextmanager
def naming_bad_inputs(*locates):
    """Turns an in-graph input error raised inside the block into a ValueError naming the input.

    Args:
        *locates: callables (or None) returning the message that names the first
            bad example, manifest row or file, or None when they find none; the
            first message found wins.

    Example:
    ```python
    prepared = RawInputs(model).prepare_evaluate(x, y)
    with naming_bad_inputs(*prepared.locates):
        model.evaluate(prepared.x, prepared.y)
    ```
    """
    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
        for locate in locates:
            found = locate() if locate is not None else None
            if found:
                raise ValueError(found) from err
        message = data_errors.tf_error_message(err.message)
        if "mmkeras:" in message:
            raise ValueError(message) from err
        raise


@dataclasses.dataclass
class Prepared:
    """What one Keras ``fit``/``evaluate``/``predict`` call gets, and how to name a bad input.

    Attributes:
        x: features, a ``tf.data.Dataset`` or feature arrays (Keras' ``x``).
        y: labels for Keras (None when ``x`` is a dataset that yields them).
        batch_size: int or None (None for a dataset: it comes batched).
        shuffle: bool. Keras' ``shuffle`` (False for a dataset: it comes shuffled).
        validation_split: float. What is left for Keras (raw inputs are split here).
        validation_data: what Keras gets as ``validation_data`` (also what the task
            keeps as ``last_validation_data``).
        locates: callables naming the bad example after an in-graph error
            (see :func:`naming_bad_inputs`).
    """

    x: object
    y: object = None
    batch_size: object = None
    shuffle: bool = False
    validation_split: float = 0.0
    validation_data: object = None
    locates: tuple = ()

    def naming_bad_inputs(self):
        """A context in which in-graph input errors become ValueErrors naming the input."""
        return naming_bad_inputs(*self.locates)


def direct_predict_function(model, preprocessor, modalities):
    """A tf.function: raw ``[B]`` strings per modality -> the model's outputs, for small predicts.

    It runs the preprocessor's batch function, the one tf.data and the SavedModel
    use, then the model, so results equal the dataset path. The caller keeps it
    (a task caches its own).

    Args:
        model: a callable Keras model taking the feature dict.
        preprocessor: a :class:`~mmkeras.preprocessing.Preprocessor`.
        modalities: list of str. The model's modalities, in argument order.
    """
    signature = [tf.TensorSpec([None], tf.string, name=m) for m in modalities]
    modalities = list(modalities)

    def fn(*raw):
        return model(preprocessor.preprocess_batch(dict(zip(modalities, raw))), training=False)

    # autograph=False as in Keras's own step functions and the preprocessor's batch function: the code is
    # graph-ready, and converting preprocess_batch's source costs ~15 s of CPU on the first predict.
    return tf.function(fn, input_signature=signature, reduce_retracing=True, autograph=False)


class RawInputs:
    """The raw-input side of one task: validation, pipelines, caching, error localisation.

    It reads the task's public description once and never writes to the task:
    every method returns values (datasets, arrays, :class:`Prepared`) and the task
    decides what to keep.

    Args:
        task: a :class:`~mmkeras.models.Task`. Read here: ``modalities``, ``name``,
            ``preprocessor`` (:meth:`~mmkeras.models.Task.require_preprocessor`),
            ``heads``, ``mm_config`` (``training.batch_size``, ``seed``),
            ``distribute_strategy`` and ``validate_labels``; a manifest path is
            read with the task as ``from_manifest``'s ``model``.
        allow_outside: bool. Manifest paths may be absolute or lead outside the
            manifest's directory (see :func:`mmkeras.data.from_manifest`).
    """

    def __init__(self, task, allow_outside=False):
        self.allow_outside = allow_outside
        self.modalities = list(task.modalities)
        self.preprocessor = task.require_preprocessor()
        self.heads = list(getattr(task, "heads", None) or [])
        self.name = f"model {task.name!r}"
        config = task.mm_config
        self.default_batch_size = config["training"]["batch_size"]
        self.validate_labels = task.validate_labels
        from mmkeras.distribute import cluster  # at call time, as sharding below: distribute loads on use

        self.strategy = cluster.model_strategy(task)  # None under JAX: the pipeline still feeds tf.data
        self.seed = config["seed"]
        self.manifest_model = task  # from_manifest's model: modalities, heads, limits, adapt

    # ---- recognising and validating raw inputs -------------------------------------------

    def is_raw(self, x):
        return raw_checks.is_raw_dict(x, self.modalities)

    def validate(self, x):
        return raw_checks.validate_raw(x, self.modalities, model_name=self.name)

    def batch_size(self, batch_size):
        return batch_size or self.default_batch_size

    def ensure_adapted(self, training, values=None):
        """Learns every modality state that still needs data from training values; otherwise says what to call.

        Args:
            training: bool. Whether the raw inputs are training data (only they may teach it).
            values: callable ``values(modality)`` returning that modality's training values
                (list or dataset of raw strings), or None.
        """
        for m in self.preprocessor.unadapted():
            if training and values is not None:
                self.preprocessor.adapt({m: values(m)})
                continue
            kind = modality(m)
            raise ValueError(f"{self.name} has {kind.unadapted(self.preprocessor.config[m])} (it has not been "
                             f"trained on raw {m}): call model.adapt({kind.adapt_argument()}) first, or fit it on "
                             f"raw training inputs or a manifest")

    # ---- datasets ---------------------------------------------------------------------------

    def make_dataset(self, x, y=None, batch_size=None, shuffle=False, seed=None, cache=False, verbose=0,
                     augment=False):
        """Validated raw arrays -> batched, prefetched ``tf.data.Dataset`` of features (see ``Task``).

        ``augment`` (training data only): the modalities' training-only raw augmentation
        (``Preprocessor.raw_augmented``) with a new seed per example every epoch; the
        features of those modalities are then computed every epoch (``cache`` would
        freeze one draw), and with ``cache`` the other modalities' once
        (:meth:`partly_cached_dataset`).
        """
        batch_size = self.batch_size(batch_size)
        if y is not None and len(y) == 1:
            y = next(iter(y.values()))
        n = len(next(iter(x.values())))
        augmented = self.preprocessor.raw_augmented() if augment else []
        augment = bool(augmented)
        if cache and not augment:
            uncached = self.make_dataset(x, batch_size=max(batch_size, 256))
            features = self.run(lambda: materialise(uncached, n, verbose), self.locate_raw(x))
            return in_memory_dataset(features if y is None else (features, y), n, batch_size, shuffle, seed)
        if cache and augment:
            return self.partly_cached_dataset(x, y, n, batch_size, shuffle, seed, augmented, verbose)
        tensors = {m: tf.constant(list(v), tf.string) for m, v in x.items()}
        ds = tf.data.Dataset.from_tensor_slices(tensors if y is None else (tensors, y))
        if augment:
            ds, fn = epoch_example_seeds(ds, n, seed, shuffle), self.preprocessor.training_map_function()
        else:
            ds, fn = (epoch_shuffle(ds, n, seed) if shuffle else ds), self.preprocessor.map_function()
        ds = ds.batch(batch_size).map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    def partly_cached_dataset(self, x, y, n, batch_size, shuffle, seed, augmented, verbose=0):
        """Training batches whose ``augmented`` modalities are preprocessed every epoch, the others once.

        The order and the example seeds are those of the uncached augmented pipeline
        (:func:`~mmkeras.training.shuffle.epoch_example_seeds` over the example
        positions), so both give the same batches. Without this, a waveform augmentation
        on the audio would decode and resize every image again each epoch.

        The augmented features are computed beside the train step (prefetched), not the
        whole epoch before its first batch: on 2 cores that was slower in every round, by
        3 to 13 s of a 40 s fit (``benchmarks/README.md``, "Training time").
        """
        fixed = [m for m in self.modalities if m not in augmented]
        cached = {}
        if fixed:
            once = tf.data.Dataset.from_tensor_slices({m: tf.constant(list(x[m]), tf.string) for m in fixed})
            once = once.batch(max(batch_size, 256)).map(self.preprocessor.part_function(fixed),
                                                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            cached = self.run(lambda: materialise(once, n, verbose), self.locate_raw(x))
        raw = {m: tf.constant(list(x[m]), tf.string) for m in augmented}
        store = (cached, raw) if y is None else (cached, raw, y)
        index = epoch_example_seeds(tf.data.Dataset.range(n), n, seed, shuffle).batch(batch_size)
        each_epoch, order = self.preprocessor.part_function(augmented, training=True), self.preprocessor.modalities

        def features_of(positions_seeds, whole):
            positions, seeds = positions_seeds
            taken = tf.nest.map_structure(lambda a: tf.gather(a, positions), whole)
            parts = {**taken[0], **each_epoch(taken[1], seeds)}
            features = {k: v for k, v in parts.items() if not k.startswith(present_key(""))}
            features["present"] = tf.stack([parts[present_key(m)] for m in order], axis=1)
            return features if y is None else (features, taken[2])

        ds = tf.data.Dataset.zip(index, tf.data.Dataset.from_tensors(store).repeat())
        ds = ds.map(features_of, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # The cardinality known: Keras counts the steps without a warning.
        return ds.apply(tf.data.experimental.assert_cardinality(-(-n // batch_size))).prefetch(tf.data.AUTOTUNE)

    def map_dataset(self, dataset):
        """Preprocessing applied to a ``tf.data.Dataset`` of raw examples (batched or not)."""
        spec = dataset.element_spec
        features = spec[0] if isinstance(spec, tuple) else spec
        if features[self.modalities[0]].shape.rank == 0:
            dataset = dataset.batch(self.default_batch_size)
        return dataset.map(self.preprocessor.map_function(), num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE)

    def manifest(self, path, batch_size, shuffle, labeled, training):
        """A manifest file -> raw dataset (only training data may teach an empty vocabulary)."""
        from mmkeras.data.manifest import from_manifest

        return from_manifest(path, model=self.manifest_model, label="label" if labeled and self.heads else None,
                             batch_size=self.batch_size(batch_size), shuffle=shuffle, seed=self.shuffle_seed(),
                             adapt=training, allow_outside=self.allow_outside, augment=training)

    def shuffle_seed(self):
        """The task's seed, or the shared one a multi-worker strategy needs (:mod:`mmkeras.distribute.sharding`)."""
        from mmkeras.distribute import sharding

        return sharding.shuffle_seed(self.seed, self.strategy)

    def prepare(self, x, y, batch_size, shuffle, training, cache=False, verbose=0, labeled=True):
        """Returns ``(data, y, locate)``: what Keras gets, and ``locate()`` naming a bad example after a failure.

        Accepts raw dicts, manifest files, raw or feature ``tf.data`` datasets and
        feature dicts; labels are checked (and class names mapped) on every path.
        """
        from mmkeras.data.manifest import manifest_of

        if training and not (self.is_raw(x) or isinstance(x, (str, os.PathLike))
                             or getattr(x, "mmkeras_augmented", False)):
            self.warn_unaugmented(x)
        if isinstance(x, (str, os.PathLike)):
            if y is not None:
                raise ValueError(f"labels come from the manifest {os.fspath(x)!r}'s label column: do not pass y")
            x = self.manifest(x, batch_size, training and shuffle, labeled, training)
        if isinstance(x, tf.data.Dataset):
            if y is not None:
                raise ValueError("a tf.data.Dataset yields its labels: do not pass y with it")
            manifest = manifest_of(x)
            if raw_checks.is_raw_dataset(x, self.modalities):
                dataset = x
                self.ensure_adapted(training, manifest.adapt_values if manifest is not None else (
                    lambda m: _dataset_values(dataset, m)))
                x = self.map_dataset(x)
            if manifest is not None and manifest.labels is not None and self.heads:
                self.check_manifest_labels(manifest)
            if isinstance(x.element_spec, tuple) and len(x.element_spec) > 1 and self.heads:
                x = x.map(label_codes.dataset_encoder(self.heads)).prefetch(tf.data.AUTOTUNE)
            return x, None, (lambda: manifest.locate(self.preprocessor)) if manifest is not None else None
        if not self.is_raw(x):
            if y is not None and self.heads and isinstance(x, dict) and "present" in x:  # feature arrays
                y = self.validate_labels(y, len(x["present"]))
                y = next(iter(y.values())) if len(self.heads) == 1 else y
            if training and shuffle and _feature_arrays(x):
                # Keras' own array shuffle is not replayed by a resumed run; this one is (seed, epoch).
                from mmkeras.distribute import sharding

                ds = in_memory_dataset(x if y is None else (x, y), len(x["present"]), self.batch_size(batch_size),
                                       shuffle=True, seed=self.shuffle_seed())
                return sharding.for_in_memory(ds, self.strategy), None, None
            return x, y, None
        arrays = self.validate(x)
        n = len(next(iter(arrays.values())))
        labels = self.validate_labels(y, n) if y is not None else None
        self.ensure_adapted(training, lambda m: arrays[m])
        # === mmkeras.distribute hook (logic in mmkeras/distribute/sharding.py) ===
        # Under a multi-worker strategy every worker must shuffle identically and
        # keep only its slice of each global batch (explicit AutoShardPolicy.DATA).
        from mmkeras.distribute import sharding

        ds = self.make_dataset(arrays, labels, batch_size, shuffle=shuffle, seed=self.shuffle_seed(), cache=cache,
                               verbose=verbose, augment=training)
        ds = sharding.for_in_memory(ds, self.strategy)
        # === end mmkeras.distribute hook ===
        return ds, None, self.locate_raw(arrays)

    def warn_unaugmented(self, x):
        """Warns that training inputs other than raw arrays skip the training-only raw augmentation."""
        augmented = self.preprocessor.raw_augmented()
        if augmented:
            warnings.warn(f"{self.name}: the training-only raw augmentation of {augmented} (e.g. audio "
                          f"waveform_augment) applies when fit gets raw inputs (a dict of arrays or a manifest "
                          f"path, or from_manifest(..., augment=True)); this fit got {type(x).__name__}, so it "
                          f"trains without it", RawAugmentationWarning, stacklevel=4)

    def check_manifest_labels(self, manifest):
        """A raw manifest's labels against the task's head: names mapped, indices in range (names the line)."""
        if len(self.heads) != 1:
            raise ValueError(f"a manifest has one label column; {self.name} has heads "
                             f"{[h['name'] for h in self.heads]}")
        head = self.heads[0]
        label_codes.encode(manifest.labels, head.get("class_names"), head["units"], where=manifest.where)
        # Integers against named classes are read as indices (the label rule), rarely what a manifest
        # labelled 0..9 means: say what they will mean. (`mmkeras train/evaluate` refuse them instead.)
        problem = label_codes.integer_label_problem(manifest.labels, head.get("class_names"), manifest.where)
        if problem is not None:
            warnings.warn(f"{problem}. Check this is what the manifest means.", label_codes.IntegerLabelWarning,
                          stacklevel=4)

    def split_validation(self, x, y, validation_split):
        """Raw ``validation_split``: holds out the last fraction, as Keras does for arrays."""
        arrays = self.validate(x)
        n = len(next(iter(arrays.values())))
        labels = self.validate_labels(y, n) if y is not None else None
        split = int(n * (1.0 - validation_split))
        if split <= 0 or split >= n:
            raise ValueError(f"validation_split={validation_split} leaves no training or validation "
                             f"examples out of {n}")
        train_x = {m: a[:split] for m, a in arrays.items()}
        val_x = {m: a[split:] for m, a in arrays.items()}
        if labels is None:
            return train_x, None, (val_x,)
        return (train_x, {k: v[:split] for k, v in labels.items()},
                (val_x, {k: v[split:] for k, v in labels.items()}))

    def validation_data(self, data, batch_size, cache):
        """``validation_data`` as a dataset, a manifest path, ``(x, y)``, or a raw dict with a label column.

        Returns ``(what Keras gets, locate)``.
        """
        if data is None:
            return None, None
        if isinstance(data, dict) and self.is_raw(data):
            label_keys = [k for k in data if k not in self.modalities]
            if not label_keys:
                raise ValueError("validation_data is a dict of inputs without labels: add a 'label' key (as in a "
                                 "manifest) or pass validation_data=(x, y)")
            x = {k: v for k, v in data.items() if k not in label_keys}
            y = data["label"] if label_keys == ["label"] else {k: data[k] for k in label_keys}
            rest = ()
        elif isinstance(data, (tuple, list)):
            if not 1 <= len(data) <= 3:
                raise ValueError(f"validation_data must be (x, y) or (x, y, sample_weight), got {len(data)} items")
            x, y, rest = data[0], (data[1] if len(data) > 1 else None), tuple(data[2:])
        else:
            x, y, rest = data, None, ()
        prepared, y, locate = self.prepare(x, y, batch_size, False, training=False, cache=cache)
        if isinstance(prepared, tf.data.Dataset):
            if rest:
                raise ValueError("validation sample weights are only supported with feature arrays")
            return prepared, locate
        return (prepared, y, *rest), locate

    # ---- running, with bad examples named --------------------------------------------------

    def locate_raw(self, arrays):
        """``locate()`` for raw arrays: the message naming the first example that fails, or None."""
        def locate():
            n = len(next(iter(arrays.values())))
            bad = data_errors.locate_bad_example(self.preprocessor, n, lambda m, idx: [arrays[m][i] for i in idx])
            if bad is None:
                return None
            modality, index, message = bad
            if message.startswith(f"mmkeras: input {modality!r}, example {index}:"):
                return message  # already names the input and the example
            return f"input {modality!r}, example {index}: could not be preprocessed: {message}"

        return locate

    @staticmethod
    def run(fn, *locates):
        """Runs ``fn()``; an in-graph input error becomes a ValueError naming the example, row or file."""
        with naming_bad_inputs(*locates):
            return fn()

    # ---- what the task's Keras entry points get -----------------------------------------------

    def prepare_fit(self, x=None, y=None, batch_size=None, verbose="auto", validation_split=0.0,
                    validation_data=None, shuffle=True, cache=True):
        """``fit``'s arguments -> a :class:`Prepared` for Keras ``fit`` (the task calls it)."""
        if validation_split and self.is_raw(x):
            x, y, validation_data = self.split_validation(x, y, validation_split)
            validation_split = 0.0
        elif validation_split and shuffle and _feature_arrays(x):  # held out here: they become a dataset
            n = len(x["present"])
            split = int(n * (1.0 - validation_split))
            if split <= 0 or split >= n:
                raise ValueError(f"validation_split={validation_split} leaves no training or validation "
                                 f"examples out of {n}")
            train, held_out = slice(0, split), slice(split, n)
            validation_data = (_take(x, held_out),) if y is None else (_take(x, held_out), _take(y, held_out))
            x, y = _take(x, train), (None if y is None else _take(y, train))
            validation_split = 0.0
        data, y, locate = self.prepare(x, y, batch_size, shuffle, training=True, cache=cache, verbose=verbose)
        validation_data, locate_validation = self.validation_data(validation_data, batch_size, cache)
        if isinstance(data, tf.data.Dataset):
            batch_size, shuffle = None, False  # a dataset comes batched and shuffled already
        return Prepared(data, y, batch_size=batch_size, shuffle=shuffle, validation_split=validation_split,
                        validation_data=validation_data, locates=(locate, locate_validation))

    def prepare_evaluate(self, x=None, y=None, batch_size=None):
        """``evaluate``'s arguments -> a :class:`Prepared` for Keras ``evaluate``."""
        data, y, locate = self.prepare(x, y, batch_size, False, training=False)
        return Prepared(data, y, batch_size=None if isinstance(data, tf.data.Dataset) else batch_size,
                        locates=(locate,))

    def prepare_predict(self, x, batch_size=None):
        """``predict``'s arguments -> a :class:`Prepared` for Keras ``predict`` (features only)."""
        data, _, locate = self.prepare(x, None, batch_size, False, training=False, labeled=False)
        if isinstance(data, tf.data.Dataset):
            batch_size = None
            if isinstance(data.element_spec, tuple):  # (features, labels): predict needs the features only
                data = data.map(lambda features, *_: features)
        return Prepared(data, batch_size=batch_size, locates=(locate,))

    def direct_inputs(self, x):
        """Small raw inputs (TensorFlow backend, no strategy) as ``Prepared`` string tensors, else None.

        The task runs them through its :func:`direct_predict_function` instead of a
        ``tf.data`` pipeline: milliseconds for a single prediction.
        """
        if not self.is_raw(x) or keras.backend.backend() != "tensorflow" or tf.distribute.has_strategy():
            return None
        arrays = self.validate(x)
        if len(next(iter(arrays.values()))) > DIRECT_PREDICT_MAX:
            return None
        self.ensure_adapted(training=False)
        tensors = [tf.constant(list(arrays[m]), tf.string) for m in self.modalities]
        return Prepared(tensors, locates=(self.locate_raw(arrays),))

    def preprocess(self, x, batch_size=256, verbose=0):
        """Raw inputs -> numpy feature dict (the exact tensors the model sees)."""
        arrays = self.validate(x)
        self.ensure_adapted(training=False)
        n = len(next(iter(arrays.values())))
        return self.run(lambda: materialise(self.make_dataset(arrays, batch_size=batch_size), n, verbose),
                        self.locate_raw(arrays))
