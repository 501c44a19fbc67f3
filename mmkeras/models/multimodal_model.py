"""The multimodal model: features -> towers -> fusion -> heads, plus raw-input fit/predict.

``MultimodalModel`` is a functional Keras model built from a resolved preset
config (section 1: parts, section 2: functional graph, section 3: config). Its
``fit``/``evaluate``/``predict`` also accept raw inputs (bytes and strings): they
run the model's :class:`~mmkeras.preprocessing.Preprocessor` in ``tf.data``, the
same code the exported SavedModel runs.
"""

import json

import keras
import numpy as np
import tensorflow as tf

from mmkeras.data import raw as raw_checks
from mmkeras.fusion import build_fusion
from mmkeras.heads import build_head
from mmkeras.layers import (
    FoldWindows,
    ImageAugmentation,
    MissingModality,
    ModalityDropout,
    SpecAugment,
    WindowPooling,
    WordDropout,
)
from mmkeras.models.config import resolve_config
from mmkeras.preprocessing import Preprocessor
from mmkeras.towers import build_tower
from mmkeras.training.mixed_precision import dtype_policy_scope
from mmkeras.training.optimizers import build_optimizer


def _augmentation(modality, config, preprocessor):
    if not config:
        return None
    if modality == "image":
        return ImageAugmentation(**config, name="image_augment")
    if modality == "audio":
        return SpecAugment(**config, name="audio_augment")
    unknown = set(config) - {"word_dropout", "seed"}
    if unknown:
        raise ValueError(f"Unknown text augment option(s) {sorted(unknown)}; known: ['seed', 'word_dropout']")
    return WordDropout(config.get("word_dropout", 0.0), unknown_id=preprocessor.text_unknown_id(),
                       seed=config.get("seed"), name="text_augment")


def build_towers(config):
    """The part every model shares: preprocessor, feature inputs and one tower per modality.

    Returns:
        ``(modalities, preprocessor, inputs, tower_outputs)``; ``tower_outputs`` are
        the tower dicts (``sequence``/``mask``/``pooled``) in modality order.
    """
    modalities = list(config["modalities"])
    preprocessor = Preprocessor({m: config["modalities"][m]["preprocessing"] for m in modalities},
                                name="preprocessor")
    inputs = {name: keras.Input(shape, dtype=dtype, name=name)
              for name, (shape, dtype) in preprocessor.feature_shapes().items()}
    tower_outputs = []
    for m in modalities:
        x = inputs[m]
        augment = _augmentation(m, config["modalities"][m]["augment"], preprocessor)
        if augment is not None:
            x = augment(x)
        tower = build_tower(config["modalities"][m]["tower"], name=f"{m}_tower")
        if m == "audio" and "audio_windows" in inputs:  # long-clip mode: tower per window, pooled
            valid = inputs["audio_windows"]
            pooled = tower(FoldWindows(name="audio_fold_windows")(x))["pooled"]
            tower_outputs.append(WindowPooling(valid.shape[1], name="audio_window_pooling")(pooled, valid))
            continue
        tower_outputs.append(tower(x))
    return modalities, preprocessor, inputs, tower_outputs


@keras.saving.register_keras_serializable(package="mmkeras")
class MultimodalModel(keras.Model):
    """A multimodal classifier/regressor built from a preset config.

    Prefer :func:`mmkeras.build_model`, which resolves a preset name and overrides.

    Args:
        config: dict. A preset (see ``mmkeras.presets``); defaults are filled in.

    Example:
    ```python
    model = mmkeras.build_model("image_text_small", num_classes=3)
    model.fit({"image": pngs, "text": captions}, labels, epochs=2)
    probs = model.predict({"image": [png], "text": ["a red square"]})
    ```
    """

    def __init__(self, config, **kwargs):
        config = resolve_config(config)
        # Record the effective policy so a reloaded .keras model gets the same dtypes.
        config["mixed_precision"] = config["mixed_precision"] or keras.config.dtype_policy().name
        with dtype_policy_scope(config["mixed_precision"]):
            # === Section 1: parts (preprocessor, inputs, towers) ===
            modalities, preprocessor, inputs, tower_outputs = build_towers(config)

            # === Section 2: functional graph ===
            present = inputs["present"]
            if config["modality_dropout"]:
                present = ModalityDropout(config["modality_dropout"], seed=config["seed"],
                                          name="modality_dropout")(present)
            fusion = build_fusion(config["fusion"], num_modalities=len(modalities))
            tower_outputs = [
                MissingModality(learned=fusion.uses_pooled, name=f"{m}_missing")(out, present[:, i])
                for i, (m, out) in enumerate(zip(modalities, tower_outputs))
            ]
            fused = fusion(tower_outputs, present)
            outputs = {h["name"]: build_head(h)(fused) for h in config["heads"]}
            if len(outputs) == 1:
                outputs = next(iter(outputs.values()))
            super().__init__(inputs=inputs, outputs=outputs, name=kwargs.pop("name", config["name"]), **kwargs)

        # === Section 3: config and state ===
        self.mm_config = config
        self.modalities = modalities
        self.preprocessor = preprocessor

    # The config is kept as JSON: a plain dict attribute would be wrapped by Keras'
    # attribute tracking, which breaks copy.deepcopy(get_config()).
    @property
    def mm_config(self):
        """The resolved preset config this model was built from (a fresh copy)."""
        return json.loads(self._mm_config_json)

    @mm_config.setter
    def mm_config(self, config):
        self._mm_config_json = json.dumps(config)

    def get_config(self):
        return {"config": self.mm_config, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ---- conveniences --------------------------------------------------------------

    @property
    def heads(self):
        return self.mm_config["heads"]

    def class_names(self, head=None):
        """Class names of a classification head (defaults to ``"0".."N-1"``)."""
        spec = self.heads[0] if head is None else next(h for h in self.heads if h["name"] == head)
        return list(spec.get("class_names") or [str(i) for i in range(spec["units"])])

    def compile(self, optimizer="auto", loss="auto", metrics="auto", loss_weights="auto", jit_compile="auto",
                **kwargs):
        """Keras ``compile`` with preset defaults: the ``training`` optimizer (AdamW) and each head's loss/metrics.

        Any argument left at ``"auto"`` comes from the preset's ``training`` section
        and heads; pass Keras objects to override. ``jit_compile="auto"`` means XLA
        under JAX (where it is the fast path) and no XLA under TensorFlow (on CPU
        its compile costs tens of seconds per model; pass ``True`` on GPUs/TPUs).
        """
        if jit_compile == "auto":
            jit_compile = keras.backend.backend() == "jax"
        train = self.mm_config["training"]
        heads = {h["name"]: h for h in self.mm_config["heads"]}
        head_layers = {name: self.get_layer(name) for name in heads}
        single = len(heads) == 1
        if optimizer == "auto":
            optimizer = build_optimizer(train)
        if loss == "auto":
            loss = {n: layer.default_loss() for n, layer in head_layers.items()}
            loss = next(iter(loss.values())) if single else loss
        if metrics == "auto":
            metrics = {n: layer.default_metrics() for n, layer in head_layers.items()}
            metrics = next(iter(metrics.values())) if single else metrics
        if loss_weights == "auto":
            loss_weights = None if single else {n: float(h["loss_weight"]) for n, h in heads.items()}
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights,
                        jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        # Our compile() is custom, so Keras asks us to restore the saved compile args.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    # ---- raw inputs -----------------------------------------------------------------

    def adapt(self, x):
        """Learns the text vocabulary from raw training inputs (no-op without text)."""
        if "text" in self.modalities:
            texts = x["text"] if isinstance(x, dict) else x
            self.preprocessor.adapt([t for t in texts if len(t)] or list(texts))

    def make_dataset(self, x, y=None, batch_size=None, shuffle=False, seed=None, cache=False):
        """Raw in-memory inputs -> batched, prefetched ``tf.data.Dataset`` of features.

        Examples are batched first and each batch goes through
        ``Preprocessor.preprocess_batch`` in parallel ``tf.data`` workers.

        Args:
            x: dict of raw inputs (lists/arrays of bytes or str), already validated.
            y: labels dict ``{head: array}`` or None.
            batch_size: int. Defaults to the preset's batch size.
            shuffle: bool. Reshuffle every epoch.
            seed: int or None. Shuffle seed.
            cache: bool. Preprocess everything once now and keep the features in
                memory; every epoch then slices batches out of them, exactly as
                ``fit`` on in-memory feature arrays does.
        """
        batch_size = batch_size or self.mm_config["training"]["batch_size"]
        if y is not None and len(self.heads) == 1:
            y = next(iter(y.values()))
        n = len(next(iter(x.values())))
        if cache:
            features = self._run(lambda: self._materialise(self.make_dataset(x, batch_size=max(batch_size, 256))), x)
            return in_memory_dataset(features if y is None else (features, y), n, batch_size, shuffle, seed)
        tensors = {m: tf.constant(list(v), tf.string) for m, v in x.items()}
        ds = tf.data.Dataset.from_tensor_slices(tensors if y is None else (tensors, y))
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size).map(self._preprocess_fn(), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    @staticmethod
    def _materialise(dataset):
        """Runs a feature dataset to the end; returns the concatenated numpy features."""
        batches = [{k: v.numpy() for k, v in b.items()} for b in dataset]
        return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}

    def _preprocess_fn(self):
        """``preprocess_batch`` for dataset elements ``x`` or ``(x, *rest)``."""
        pre, modalities = self.preprocessor.batch_function(), self.modalities

        def fn(*element):
            features = pre({m: element[0][m] for m in modalities})
            return (features,) + tuple(element[1:]) if len(element) > 1 else features

        return fn

    def map_raw_dataset(self, dataset):
        """Applies preprocessing to a ``tf.data.Dataset`` of raw examples (batched or not)."""
        spec = dataset.element_spec
        features = spec[0] if isinstance(spec, tuple) else spec
        if features[self.modalities[0]].shape.rank == 0:
            dataset = dataset.batch(self.mm_config["training"]["batch_size"])
        return dataset.map(self._preprocess_fn(), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def _prepare(self, x, y, batch_size, shuffle, training, cache=False):
        """Returns ``(dataset_or_x, y, raw_arrays)``; raw_arrays is kept for diagnostics."""
        if isinstance(x, tf.data.Dataset):
            if raw_checks.is_raw_dataset(x, self.modalities):
                return self.map_raw_dataset(x), None, None
            return x, y, None
        if not raw_checks.is_raw_dict(x, self.modalities):
            return x, y, None
        arrays = raw_checks.validate_raw(x, self.modalities, model_name=f"model {self.name!r}")
        n = len(next(iter(arrays.values())))
        labels = raw_checks.validate_labels(y, self.heads, n) if y is not None else None
        if training and self.preprocessor.needs_adapt:
            self.adapt(arrays)
        # === mmkeras.distribute hook (logic in mmkeras/distribute/sharding.py) ===
        # Under a multi-worker strategy every worker must shuffle identically and
        # keep only its slice of each global batch (explicit AutoShardPolicy.DATA).
        from mmkeras.distribute import sharding

        seed = sharding.shuffle_seed(self.mm_config["seed"], self.distribute_strategy)
        ds = self.make_dataset(arrays, labels, batch_size, shuffle=shuffle, seed=seed, cache=cache)
        ds = sharding.for_in_memory(ds, self.distribute_strategy)
        # === end mmkeras.distribute hook ===
        return ds, None, arrays

    def _run(self, fn, arrays):
        try:
            return fn()
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
            if arrays is None:
                raise
            bad = self._find_bad_example(arrays)
            if bad is None:
                raise
            modality, index, message = bad
            raise ValueError(f"input {modality!r}, example {index}: could not be preprocessed: {message}") from err

    def _find_bad_example(self, arrays):
        """Locates the first raw example whose preprocessing fails (eager, on error only)."""
        n = len(next(iter(arrays.values())))
        for i in range(n):
            for m in self.modalities:
                example = {k: (arrays[k][i] if k == m else b"") for k in self.modalities}
                try:
                    self.preprocessor.preprocess_example(example)
                except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
                    return m, i, _first_message_line(err.message)
        return None

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, cache=True, **kwargs):
        """Keras ``fit`` that also takes raw inputs.

        With a raw dict (``{"image": [png bytes, ...], "text": [...]}``) the text
        vocabulary is adapted on the training split if still empty, examples are
        preprocessed in ``tf.data`` (with ``cache``, once before the first epoch,
        the features then kept in memory),
        and ``validation_split`` holds out the last fraction, as Keras does.
        """
        if validation_split and raw_checks.is_raw_dict(x, self.modalities):
            arrays = raw_checks.validate_raw(x, self.modalities, model_name=f"model {self.name!r}")
            n = len(next(iter(arrays.values())))
            labels = raw_checks.validate_labels(y, self.heads, n)
            split = int(n * (1.0 - validation_split))
            if split <= 0 or split >= n:
                raise ValueError(f"validation_split={validation_split} leaves no training or validation "
                                 f"examples out of {n}")
            x = {m: a[:split] for m, a in arrays.items()}
            validation_data = ({m: a[split:] for m, a in arrays.items()}, {k: v[split:] for k, v in labels.items()})
            y = {k: v[:split] for k, v in labels.items()}
            validation_split = 0.0
        data, y, arrays = self._prepare(x, y, batch_size, shuffle, training=True, cache=cache)
        if validation_data is not None:
            vx, vy = validation_data[0], (validation_data[1] if len(validation_data) > 1 else None)
            validation_data, _, _ = self._prepare(vx, vy, batch_size, False, training=False, cache=cache)
        if isinstance(data, tf.data.Dataset):
            batch_size, shuffle = None, False  # a dataset comes batched and shuffled already
        self._last_validation_data = validation_data
        return self._run(
            lambda: super(MultimodalModel, self).fit(
                data, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                validation_split=validation_split, validation_data=validation_data, shuffle=shuffle, **kwargs),
            arrays,
        )

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", **kwargs):
        """Keras ``evaluate`` that also takes raw inputs (see :meth:`fit`)."""
        data, y, arrays = self._prepare(x, y, batch_size, False, training=False)
        if data is not x:
            batch_size = None
        return self._run(
            lambda: super(MultimodalModel, self).evaluate(data, y, batch_size=batch_size, verbose=verbose,
                                                          **kwargs),
            arrays,
        )

    # Up to this many raw examples, predict skips building a tf.data pipeline per call.
    DIRECT_PREDICT_MAX = 256

    def _direct_predict_fn(self):
        """A cached tf.function: raw ``[B]`` strings -> outputs, for low-latency small predicts.

        It runs ``preprocess_batch``, the function tf.data and the SavedModel use,
        so results equal the dataset path.
        """
        if getattr(self, "_direct_fn", None) is None:
            signature = [tf.TensorSpec([None], tf.string, name=m) for m in self.modalities]

            def fn(*raw):
                features = self.preprocessor.preprocess_batch(dict(zip(self.modalities, raw)))
                return self(features, training=False)

            self._direct_fn = tf.function(fn, input_signature=signature, reduce_retracing=True)
        return self._direct_fn

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        """Keras ``predict`` that also takes raw inputs (see :meth:`fit`).

        Small raw inputs (up to ``DIRECT_PREDICT_MAX`` examples, TensorFlow backend)
        go through one cached graph instead of a new tf.data pipeline, so a single
        prediction costs milliseconds rather than a pipeline build.
        """
        if (raw_checks.is_raw_dict(x, self.modalities) and not kwargs and keras.backend.backend() == "tensorflow"
                and not tf.distribute.has_strategy()):
            arrays = raw_checks.validate_raw(x, self.modalities, model_name=f"model {self.name!r}")
            if len(next(iter(arrays.values()))) <= self.DIRECT_PREDICT_MAX:
                tensors = [tf.constant(list(arrays[m]), tf.string) for m in self.modalities]
                out = self._run(lambda: self._direct_predict_fn()(*tensors), arrays)
                return keras.tree.map_structure(lambda t: t.numpy(), out)
        data, _, arrays = self._prepare(x, None, batch_size, False, training=False)
        if data is not x:
            batch_size = None
        return self._run(
            lambda: super(MultimodalModel, self).predict(data, batch_size=batch_size, verbose=verbose, **kwargs),
            arrays,
        )

    def preprocess(self, x):
        """Raw inputs -> numpy feature dict (the exact tensors the model sees)."""
        arrays = raw_checks.validate_raw(x, self.modalities, model_name=f"model {self.name!r}")
        return self._run(lambda: self._materialise(self.make_dataset(arrays, batch_size=256)), arrays)


def in_memory_dataset(data, n, batch_size, shuffle=False, seed=None):
    """Batches of in-memory arrays, sliced by (shuffled) index batches, as Keras does for arrays.

    Shuffling ``n`` integers and gathering a batch is much cheaper than shuffling
    ``n`` feature dicts element by element.
    """
    index = tf.data.Dataset.range(n)
    if shuffle:
        index = index.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    whole = tf.data.Dataset.from_tensors(data).repeat()
    ds = tf.data.Dataset.zip(index.batch(batch_size), whole)
    ds = ds.map(lambda i, d: tf.nest.map_structure(lambda a: tf.gather(a, i), d),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _first_message_line(message):
    """The informative line of a TF error (map_fn errors start with "in user code:" and a trace)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    ours = [line for line in lines if "mmkeras:" in line]
    return (ours or lines or [message])[0]
