"""The multimodal model: features -> towers -> fusion -> heads, plus raw-input fit/predict.

``MultimodalModel`` is a functional Keras model built from a resolved preset
config (section 1: parts, section 2: functional graph, section 3: config). Its
``fit``/``evaluate``/``predict`` also accept raw inputs (bytes and strings): they
run the model's :class:`~mmkeras.preprocessing.Preprocessor` in ``tf.data``, the
same code the exported SavedModel runs.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from mmkeras.data import errors as data_errors
from mmkeras.data import labels as label_codes
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
        """Keras ``compile`` with preset defaults: AdamW and each head's loss/metrics.

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
            optimizer = keras.optimizers.AdamW(
                learning_rate=train["learning_rate"], weight_decay=train["weight_decay"], clipnorm=train["clipnorm"]
            )
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
        """Learns the text vocabulary from raw training inputs (no-op without text).

        ``fit`` on raw inputs or a manifest does this itself when the vocabulary is
        empty; call it to learn the vocabulary from other texts first.

        Args:
            x: a raw input dict (its ``"text"`` is used) or a list of strings.

        Example:
        ```python
        model.adapt({"text": ["a red square", "a blue circle"]})
        ```
        """
        if "text" in self.modalities:
            texts = x["text"] if isinstance(x, dict) else x
            self.preprocessor.adapt([t for t in texts if len(t)] or list(texts))

    def make_dataset(self, x, y=None, batch_size=None, shuffle=False, seed=None, cache=False, verbose=0):
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
            verbose: 0, 1 or 2. With ``cache``: a progress bar (1) or one line (2)
                while the examples are preprocessed.
        """
        batch_size = batch_size or self.mm_config["training"]["batch_size"]
        if y is not None and len(self.heads) == 1:
            y = next(iter(y.values()))
        n = len(next(iter(x.values())))
        if cache:
            uncached = self.make_dataset(x, batch_size=max(batch_size, 256))
            features = self._run(lambda: self._materialise(uncached, n, verbose), self._locate_raw(x))
            return in_memory_dataset(features if y is None else (features, y), n, batch_size, shuffle, seed)
        tensors = {m: tf.constant(list(v), tf.string) for m, v in x.items()}
        ds = tf.data.Dataset.from_tensor_slices(tensors if y is None else (tensors, y))
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size).map(self._preprocess_fn(), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    @staticmethod
    def _materialise(dataset, num_examples=None, verbose=0):
        """Runs a feature dataset to the end; returns the concatenated numpy features."""
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

    def _ensure_vocabulary(self, training, texts=None):
        """Learns an empty text vocabulary from training texts; otherwise says what to call.

        Args:
            training: bool. Whether the raw inputs are training data.
            texts: callable returning the training texts (list or dataset of strings), or None.
        """
        if self.preprocessor.text_vectorizer is None or not self.preprocessor.needs_adapt:
            return
        if training and texts is not None:
            self.preprocessor.adapt(texts())
            return
        raise ValueError(f"model {self.name!r} has an empty text vocabulary (it has not been trained on raw text): "
                         f"call model.adapt(train_texts) first, or fit it on raw training inputs or a manifest")

    def _manifest(self, path, batch_size, shuffle, labeled, training):
        from mmkeras.data.manifest import from_manifest
        from mmkeras.distribute import sharding

        # Only training data may teach an empty vocabulary (never an evaluation manifest).
        return from_manifest(path, model=self, label="label" if labeled and self.heads else None,
                             batch_size=batch_size or self.mm_config["training"]["batch_size"], shuffle=shuffle,
                             seed=sharding.shuffle_seed(self.mm_config["seed"], self.distribute_strategy),
                             adapt=training)

    def _prepare(self, x, y, batch_size, shuffle, training, cache=False, verbose=0, labeled=True):
        """Returns ``(data, y, locate)``: what Keras gets, and ``locate()`` naming a bad example after a failure.

        Accepts raw dicts, manifest files, raw or feature ``tf.data`` datasets and
        feature dicts; labels are checked (and class names mapped) on every path.
        """
        from mmkeras.data.manifest import manifest_of

        if isinstance(x, (str, os.PathLike)):
            if y is not None:
                raise ValueError(f"labels come from the manifest {os.fspath(x)!r}'s label column: do not pass y")
            x = self._manifest(x, batch_size, training and shuffle, labeled, training)
        if isinstance(x, tf.data.Dataset):
            if y is not None:
                raise ValueError("a tf.data.Dataset yields its labels: do not pass y with it")
            manifest = manifest_of(x)
            if raw_checks.is_raw_dataset(x, self.modalities):
                texts = (lambda: [t for t in manifest.columns["text"] if t]) if manifest is not None else (
                    lambda: _dataset_texts(x))
                self._ensure_vocabulary(training, texts if "text" in self.modalities else None)
                x = self.map_raw_dataset(x)
            if manifest is not None and manifest.labels is not None and self.heads:
                self._check_manifest_labels(manifest)
            if isinstance(x.element_spec, tuple) and len(x.element_spec) > 1 and self.heads:
                x = x.map(label_codes.dataset_encoder(self.heads)).prefetch(tf.data.AUTOTUNE)
            return x, None, (lambda: manifest.locate(self.preprocessor)) if manifest is not None else None
        if not raw_checks.is_raw_dict(x, self.modalities):
            if y is not None and self.heads and isinstance(x, dict) and "present" in x:  # feature arrays
                y = raw_checks.validate_labels(y, self.heads, len(x["present"]))
                y = next(iter(y.values())) if len(self.heads) == 1 else y
            return x, y, None
        arrays = raw_checks.validate_raw(x, self.modalities, model_name=f"model {self.name!r}")
        n = len(next(iter(arrays.values())))
        labels = raw_checks.validate_labels(y, self.heads, n) if y is not None else None
        self._ensure_vocabulary(training, lambda: [t for t in arrays["text"] if len(t)] or list(arrays["text"]))
        # === mmkeras.distribute hook (logic in mmkeras/distribute/sharding.py) ===
        # Under a multi-worker strategy every worker must shuffle identically and
        # keep only its slice of each global batch (explicit AutoShardPolicy.DATA).
        from mmkeras.distribute import sharding

        seed = sharding.shuffle_seed(self.mm_config["seed"], self.distribute_strategy)
        ds = self.make_dataset(arrays, labels, batch_size, shuffle=shuffle, seed=seed, cache=cache, verbose=verbose)
        ds = sharding.for_in_memory(ds, self.distribute_strategy)
        # === end mmkeras.distribute hook ===
        return ds, None, self._locate_raw(arrays)

    def _check_manifest_labels(self, manifest):
        """A raw manifest's labels against this model's head: names mapped, indices in range (names the line)."""
        if len(self.heads) != 1:
            raise ValueError(f"a manifest has one label column; model {self.name!r} has heads "
                             f"{[h['name'] for h in self.heads]}")
        head = self.heads[0]
        label_codes.encode(manifest.labels, head.get("class_names"), head["units"], where=manifest.where)

    def _validation_data(self, data, batch_size, cache):
        """``validation_data`` as a dataset, a manifest path, ``(x, y)``, or a raw dict with a label column.

        Returns ``(what Keras gets, locate)``.
        """
        if data is None:
            return None, None
        if isinstance(data, dict) and raw_checks.is_raw_dict(data, self.modalities):
            label_keys = [k for k in data if k not in ("image", "audio", "text")]
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
        prepared, y, locate = self._prepare(x, y, batch_size, False, training=False, cache=cache)
        if isinstance(prepared, tf.data.Dataset):
            if rest:
                raise ValueError("validation sample weights are only supported with feature arrays")
            return prepared, locate
        return (prepared, y, *rest), locate

    @property
    def _last_validation_data(self):
        """The validation data of the current (or last) ``fit``, as Keras received it."""
        holder = getattr(self, "_validation_holder", None)
        return holder.value if holder is not None else None

    def _locate_raw(self, arrays):
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

    def _run(self, fn, *locates):
        """Runs a Keras call; an in-graph input error becomes a ValueError naming the example, row or file."""
        try:
            return fn()
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
            for locate in locates:
                found = locate() if locate is not None else None
                if found:
                    raise ValueError(found) from err
            message = data_errors.tf_error_message(err.message)
            if "mmkeras:" in message:
                raise ValueError(message) from err
            raise

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, cache=True, **kwargs):
        """Keras ``fit`` that also takes raw inputs and manifests.

        ``x`` may be a raw dict (``{"image": [png bytes, ...], "text": [...]}``), a
        manifest file (CSV/JSONL, see :func:`mmkeras.data.from_manifest`), a raw or
        feature ``tf.data.Dataset``, or feature arrays. On raw inputs the text
        vocabulary is learned from the training data if still empty, examples are
        preprocessed in ``tf.data`` (with ``cache``, once before the first epoch,
        with a progress bar; the features then kept in memory), and
        ``validation_split`` holds out the last fraction, as Keras does. Labels
        may be class indices or, when the model has ``class_names``, the names.
        ``validation_data`` may be a dataset, a manifest file, ``(x, y)``, or a raw
        dict with a ``label`` key.
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
        data, y, locate = self._prepare(x, y, batch_size, shuffle, training=True, cache=cache, verbose=verbose)
        validation_data, locate_validation = self._validation_data(validation_data, batch_size, cache)
        if isinstance(data, tf.data.Dataset):
            batch_size, shuffle = None, False  # a dataset comes batched and shuffled already
        self._validation_holder = _Untracked(validation_data)  # for the TensorBoard confusion matrix
        return self._run(
            lambda: super(MultimodalModel, self).fit(
                data, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                validation_split=validation_split, validation_data=validation_data, shuffle=shuffle, **kwargs),
            locate, locate_validation,
        )

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", **kwargs):
        """Keras ``evaluate`` that also takes raw inputs and manifests (see :meth:`fit`)."""
        data, y, locate = self._prepare(x, y, batch_size, False, training=False)
        if isinstance(data, tf.data.Dataset):
            batch_size = None
        return self._run(
            lambda: super(MultimodalModel, self).evaluate(data, y, batch_size=batch_size, verbose=verbose,
                                                          **kwargs),
            locate,
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
                self._ensure_vocabulary(training=False)
                tensors = [tf.constant(list(arrays[m]), tf.string) for m in self.modalities]
                out = self._run(lambda: self._direct_predict_fn()(*tensors), self._locate_raw(arrays))
                return keras.tree.map_structure(lambda t: t.numpy(), out)
        data, _, locate = self._prepare(x, None, batch_size, False, training=False, labeled=False)
        if isinstance(data, tf.data.Dataset):
            batch_size = None
            if isinstance(data.element_spec, tuple):  # (features, labels): predict needs the features only
                data = data.map(lambda features, *_: features)
        return self._run(
            lambda: super(MultimodalModel, self).predict(data, batch_size=batch_size, verbose=verbose, **kwargs),
            locate,
        )

    def preprocess(self, x, verbose=0):
        """Raw inputs -> numpy feature dict (the exact tensors the model sees).

        Args:
            x: dict of raw inputs.
            verbose: 0, 1 (progress bar) or 2 (one line).
        """
        arrays = raw_checks.validate_raw(x, self.modalities, model_name=f"model {self.name!r}")
        self._ensure_vocabulary(training=False)
        n = len(next(iter(arrays.values())))
        return self._run(lambda: self._materialise(self.make_dataset(arrays, batch_size=256), n, verbose),
                         self._locate_raw(arrays))


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


class _Untracked:
    """Holds a value out of Keras/TF object tracking: a dataset attribute would be saved with
    the model (SavedModel export then fails on its stateful preprocessing function)."""

    def __init__(self, value):
        self.value = value


def _dataset_texts(dataset):
    """The text of every example of a raw dataset (batched or not), as a dataset of strings."""
    texts = dataset.map(lambda x, *_: x["text"])
    return texts.unbatch() if texts.element_spec.shape.rank else texts
