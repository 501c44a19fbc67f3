"""Raw inputs -> batched features in ``tf.data``: the machinery every task shares.

A task (:class:`~mmkeras.models.Task`) accepts raw examples (image bytes, WAV
bytes, UTF-8 text) in ``fit``/``evaluate``/``predict``. This module turns them
into feature batches with the task's preprocessor, the same function the
exported SavedModel runs:

- validation of raw dicts and labels before any TensorFlow runs (errors name the input);
- ``make_dataset``: batch raw strings, then a parallel map of the preprocessor's
  batch function; with ``cache`` everything is preprocessed once and batches are
  sliced from in-memory features (:func:`in_memory_dataset`), as Keras does for arrays;
- ``validation_split`` on raw inputs (the last fraction, as Keras does);
- multi-worker sharding (one hook, logic in :mod:`mmkeras.distribute.sharding`);
- error localisation: when a batch fails, the first bad example is found eagerly
  and re-raised as a ValueError naming the input and the example;
- a cached direct-predict graph for small raw inputs (milliseconds, no pipeline).
"""

import re

import keras
import numpy as np
import tensorflow as tf

from mmkeras.data import raw as raw_checks

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
        index = index.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    whole = tf.data.Dataset.from_tensors(data).repeat()
    ds = tf.data.Dataset.zip(index.batch(batch_size), whole)
    ds = ds.map(lambda i, d: tf.nest.map_structure(lambda a: tf.gather(a, i), d),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def materialise(dataset):
    """Runs a dataset of feature dicts to the end; returns the concatenated numpy features.

    The one way raw inputs become in-memory features (``Task.preprocess``, the
    ``fit(cache=True)`` path and evaluation all use it).
    """
    batches = [{k: v.numpy() for k, v in b.items()} for b in dataset]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def first_message_line(message):
    """The informative line of a TF error: the mmkeras message, never a line of the traceback."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    ours = [line for line in lines if re.search(r"(?:^|\[|: )mmkeras:", line)]
    return (ours or lines or [message])[0]


class RawInputs:
    """The raw-input side of one task: validation, pipelines, caching, error localisation.

    Args:
        task: a :class:`~mmkeras.models.Task` (it has ``preprocessor``, ``modalities``,
            ``mm_config`` and ``validate_labels``).
    """

    def __init__(self, task):
        self.task = task
        self.modalities = list(task.modalities)
        self.preprocessor = task.require_preprocessor()
        self.name = f"model {task.name!r}"

    # ---- recognising and validating raw inputs -------------------------------------------

    def is_raw(self, x):
        return raw_checks.is_raw_dict(x, self.modalities)

    def validate(self, x):
        return raw_checks.validate_raw(x, self.modalities, model_name=self.name)

    def batch_size(self, batch_size):
        return batch_size or self.task.mm_config["training"]["batch_size"]

    # ---- datasets ---------------------------------------------------------------------------

    def make_dataset(self, x, y=None, batch_size=None, shuffle=False, seed=None, cache=False):
        """Validated raw arrays -> batched, prefetched ``tf.data.Dataset`` of features (see ``Task``)."""
        batch_size = self.batch_size(batch_size)
        if y is not None and len(y) == 1:
            y = next(iter(y.values()))
        n = len(next(iter(x.values())))
        if cache:
            features = self.run(lambda: materialise(self.make_dataset(x, batch_size=max(batch_size, 256))), x)
            return in_memory_dataset(features if y is None else (features, y), n, batch_size, shuffle, seed)
        tensors = {m: tf.constant(list(v), tf.string) for m, v in x.items()}
        ds = tf.data.Dataset.from_tensor_slices(tensors if y is None else (tensors, y))
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size).map(self.preprocessor.map_function(), num_parallel_calls=tf.data.AUTOTUNE,
                                      deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    def map_dataset(self, dataset):
        """Preprocessing applied to a ``tf.data.Dataset`` of raw examples (batched or not)."""
        spec = dataset.element_spec
        features = spec[0] if isinstance(spec, tuple) else spec
        if features[self.modalities[0]].shape.rank == 0:
            dataset = dataset.batch(self.task.mm_config["training"]["batch_size"])
        return dataset.map(self.preprocessor.map_function(), num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE)

    def prepare(self, x, y, batch_size, shuffle, training, cache=False):
        """Returns ``(dataset_or_x, y, raw_arrays)``; ``raw_arrays`` is kept to localise errors."""
        if isinstance(x, tf.data.Dataset):
            if raw_checks.is_raw_dataset(x, self.modalities):
                return self.map_dataset(x), None, None
            return x, y, None
        if not self.is_raw(x):
            return x, y, None
        arrays = self.validate(x)
        n = len(next(iter(arrays.values())))
        labels = self.task.validate_labels(y, n) if y is not None else None
        if training and self.preprocessor.needs_adapt:
            self.preprocessor.adapt(arrays)
        # === mmkeras.distribute hook (logic in mmkeras/distribute/sharding.py) ===
        # Under a multi-worker strategy every worker must shuffle identically and
        # keep only its slice of each global batch (explicit AutoShardPolicy.DATA).
        from mmkeras.distribute import sharding

        seed = sharding.shuffle_seed(self.task.mm_config["seed"], self.task.distribute_strategy)
        ds = self.make_dataset(arrays, labels, batch_size, shuffle=shuffle, seed=seed, cache=cache)
        ds = sharding.for_in_memory(ds, self.task.distribute_strategy)
        # === end mmkeras.distribute hook ===
        return ds, None, arrays

    def split_validation(self, x, y, validation_split):
        """Raw ``validation_split``: holds out the last fraction, as Keras does for arrays."""
        arrays = self.validate(x)
        n = len(next(iter(arrays.values())))
        labels = self.task.validate_labels(y, n) if y is not None else None
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

    # ---- running, with bad examples named --------------------------------------------------

    def run(self, fn, arrays):
        """Runs ``fn``; a preprocessing failure becomes a ValueError naming the input and example."""
        try:
            return fn()
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
            if arrays is None:
                raise
            bad = self.find_bad_example(arrays)
            if bad is None:
                raise
            modality, index, message = bad
            raise ValueError(f"input {modality!r}, example {index}: could not be preprocessed: {message}") from err

    def find_bad_example(self, arrays):
        """Locates the first raw example whose preprocessing fails (eager, on error only)."""
        n = len(next(iter(arrays.values())))
        for i in range(n):
            for m in self.modalities:
                example = {k: (arrays[k][i] if k == m else b"") for k in self.modalities}
                try:
                    self.preprocessor.preprocess_example(example)
                except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
                    return m, i, first_message_line(err.message)
        return None

    # ---- the Keras entry points -------------------------------------------------------------

    def fit(self, keras_fit, x=None, y=None, batch_size=None, validation_split=0.0, validation_data=None,
            shuffle=True, cache=True, **kwargs):
        if validation_split and self.is_raw(x):
            x, y, validation_data = self.split_validation(x, y, validation_split)
            validation_split = 0.0
        data, y, arrays = self.prepare(x, y, batch_size, shuffle, training=True, cache=cache)
        if validation_data is not None:
            vx, vy = validation_data[0], (validation_data[1] if len(validation_data) > 1 else None)
            validation_data, _, _ = self.prepare(vx, vy, batch_size, False, training=False, cache=cache)
        if isinstance(data, tf.data.Dataset):
            batch_size, shuffle = None, False  # a dataset comes batched and shuffled already
        self.task.last_validation_data = validation_data
        return self.run(lambda: keras_fit(data, y, batch_size=batch_size, validation_split=validation_split,
                                          validation_data=validation_data, shuffle=shuffle, **kwargs), arrays)

    def evaluate(self, keras_evaluate, x=None, y=None, batch_size=None, **kwargs):
        data, y, arrays = self.prepare(x, y, batch_size, False, training=False)
        if data is not x:
            batch_size = None
        return self.run(lambda: keras_evaluate(data, y, batch_size=batch_size, **kwargs), arrays)

    def predict(self, keras_predict, x, batch_size=None, **kwargs):
        if self.is_raw(x) and set(kwargs) <= {"verbose"} and keras.backend.backend() == "tensorflow" \
                and not tf.distribute.has_strategy():
            arrays = self.validate(x)
            if len(next(iter(arrays.values()))) <= DIRECT_PREDICT_MAX:
                tensors = [tf.constant(list(arrays[m]), tf.string) for m in self.modalities]
                out = self.run(lambda: self.direct_predict_fn()(*tensors), arrays)
                return keras.tree.map_structure(lambda t: t.numpy(), out)
        data, _, arrays = self.prepare(x, None, batch_size, False, training=False)
        if data is not x:
            batch_size = None
        return self.run(lambda: keras_predict(data, batch_size=batch_size, **kwargs), arrays)

    def direct_predict_fn(self):
        """A cached tf.function: raw ``[B]`` strings -> outputs, for low-latency small predicts.

        It runs the preprocessor's batch function, the one tf.data and the SavedModel
        use, so results equal the dataset path.
        """
        task = self.task
        if getattr(task, "_direct_predict", None) is None:
            signature = [tf.TensorSpec([None], tf.string, name=m) for m in self.modalities]
            preprocessor, modalities = self.preprocessor, self.modalities

            def fn(*raw):
                return task(preprocessor.preprocess_batch(dict(zip(modalities, raw))), training=False)

            task._direct_predict = tf.function(fn, input_signature=signature, reduce_retracing=True)
        return task._direct_predict

    def preprocess(self, x, batch_size=256):
        """Raw inputs -> numpy feature dict (the exact tensors the model sees)."""
        arrays = self.validate(x)
        return self.run(lambda: materialise(self.make_dataset(arrays, batch_size=batch_size)), arrays)
