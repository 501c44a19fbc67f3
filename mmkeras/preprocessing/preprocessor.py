"""Raw example -> model features, the one code path for tf.data, direct predict and serving.

:class:`Preprocessor` owns the per-modality preprocessing configs and the only
learned state of preprocessing (e.g. the text vocabulary). ``preprocess_batch``
turns a ``[B]`` batch of raw strings into batched features by asking each
registered modality (:mod:`mmkeras.modalities`); it runs inside
``tf.data.Dataset.map`` (after ``batch``), inside the exported SavedModel and in
direct predict, and ``preprocess_example`` is the same function on a batch of one,
so training and serving cannot disagree.
"""

import inspect
import weakref

import keras
import tensorflow as tf

from mmkeras.layers.shapes import shapes_by_name
from mmkeras.modalities import feature_specs, modality, modality_order, ordered, resolve_limits, text_modality
from mmkeras.towers import modality_preprocessing

# Preprocessor -> {(training, part): its traced batch function}; kept off the layer so SavedModel/.keras tracking never
# sees them.
_BATCH_FUNCTIONS = weakref.WeakKeyDictionary()


def present_key(name):
    """The key of modality ``name``'s presence flag in a :meth:`Preprocessor.part_function` result."""
    return f"present:{name}"


def resolve_preprocessing(name, config):
    """Fills defaults and rejects unknown keys of one modality's preprocessing config."""
    return modality(name).resolve(config)


def __getattr__(name):
    if name == "MODALITY_ORDER":  # the registered modalities in present-column order (it can grow)
        return tuple(modality_order())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@keras.saving.register_keras_serializable(package="mmkeras")
class Preprocessor(keras.layers.Layer):
    """Turns raw inputs (image bytes, WAV bytes, UTF-8 text, ...) into model features.

    Args:
        modalities: dict. ``{modality: preprocessing config}`` for the modalities
            the model takes; missing keys get each modality's defaults.

    Example:
    ```python
    pre = Preprocessor({"image": {"height": 28, "width": 28}, "text": {}})
    pre.adapt({"text": ["a red square", "a blue circle"]})
    features = pre.preprocess_batch({"image": tf.constant([png]), "text": tf.constant(["a red square"])})
    # {"image": [1, 28, 28, 3] float32, "text": [1, 32] int32, "present": [1, 2] float32}
    ```
    """

    def __init__(self, modalities, **kwargs):
        super().__init__(**kwargs)
        if not modalities:
            raise ValueError("A model needs at least one modality")
        self.modalities = ordered(modalities)
        self.config = {m: modality(m).resolve(modalities[m]) for m in self.modalities}
        # Each modality's state lives in attributes named "<modality>_<key>" (e.g. text_vectorizer),
        # so Keras saves the layers among it (vocabularies as .keras assets).
        self._state_keys = {}
        for m in self.modalities:
            state = modality(m).make_state(self.config[m])
            for key, value in state.items():
                setattr(self, f"{m}_{key}", value)
            self._state_keys[m] = list(state)

    @classmethod
    def from_preset(cls, preset, name="preprocessor"):
        """The preprocessor of a preset: each modality's options, with what its tower implies.

        The same options a task built from the preset gets (a pretrained tower's
        vocabulary or image size first, then the preset's own); state such as a
        text vocabulary starts empty (``adapt``, or the first raw ``fit``, learns it).

        Args:
            preset: str or dict. A registered preset name (:func:`mmkeras.list_presets`) or a preset dict.
            name: str. The layer's name.

        Returns:
            A :class:`Preprocessor`.

        Example:
        ```python
        preprocessor = Preprocessor.from_preset("image_text_small")
        preprocessor.feature_shapes()["image"]  # ((32, 32, 3), "float32")
        ```
        """
        from mmkeras.presets.catalog import get_preset  # at call time: the presets package imports tasks

        config = get_preset(preset) if isinstance(preset, str) else preset
        if not isinstance(config, dict) or not isinstance(config.get("modalities"), dict):
            raise ValueError(f"preset must be a name or a dict with 'modalities', got {preset!r}")
        for m, spec in config["modalities"].items():
            if not isinstance(spec, dict) or not isinstance(spec.get("tower"), dict) or "type" not in spec["tower"]:
                raise ValueError(f"preset modalities.{m} needs a 'tower' config with a 'type', got {spec!r}")
        return cls({m: modality_preprocessing(spec) for m, spec in config["modalities"].items()}, name=name)

    def state(self, name):
        """``{key: object}`` state of one modality (e.g. ``{"vectorizer": TextVectorizer}``)."""
        return {key: getattr(self, f"{name}_{key}") for key in self._state_keys[name]}

    def state_layers(self):
        """Every Keras layer in the preprocessing state (an export must track them)."""
        return [v for m in self.modalities for v in self.state(m).values() if isinstance(v, keras.layers.Layer)]

    def tokenize(self, texts, name=None):
        """``[B]`` strings -> ``[B, sequence_length]`` int32 token ids of the modality ``name``.

        ``name`` defaults to this preprocessor's (first) modality of text values.
        """
        name = name or text_modality(self.modalities)
        if name is None:
            raise ValueError(f"tokenize: this preprocessor has no modality of text values ({self.modalities})")
        features, _ = modality(name).preprocess_batch(tf.reshape(tf.convert_to_tensor(texts, tf.string), [-1]),
                                                       self.config[name], self.state(name))
        return features[name]

    # ---- feature specs ---------------------------------------------------------------------

    def feature_shapes(self):
        """Per-feature ``(shape without batch, dtype)``, including ``present``."""
        return feature_specs(self.config)

    # ---- learned state ---------------------------------------------------------------------

    @property
    def needs_adapt(self):
        """True while some modality's state must still learn from training data (e.g. an empty vocabulary)."""
        return bool(self.unadapted())

    def raw_augmented(self):
        """The modalities with a training-only augmentation of raw values (e.g. audio ``waveform_augment``).

        Their training features change every epoch, so a raw ``fit`` computes them per
        epoch (:meth:`training_map_function`) instead of caching them once.
        """
        return [m for m in self.modalities if modality(m).augments_raw(self.config[m])]

    def unadapted(self):
        """The modalities whose state must still learn from training data (``Modality.needs_adapt``)."""
        return [m for m in self.modalities if modality(m).needs_adapt(self.state(m))]

    def adapt(self, x, batch_size=256):
        """Learns the preprocessing state of every modality that declares one from raw training inputs.

        Only modalities whose state still needs data (``Modality.needs_adapt``, e.g. an
        empty text vocabulary) learn; each gets its own values through ``Modality.adapt``.

        Args:
            x: dict ``{modality: raw values}`` (values of absent examples are skipped);
                a plain list of strings or a ``tf.data.Dataset`` of strings means the
                (first) modality of text values.
            batch_size: int. Batch size used while learning (e.g. counting tokens).
        """
        if not isinstance(x, dict):
            x = {text_modality(self.modalities): x}
        for m in self.unadapted():
            if m not in x:
                continue
            values, kind = x[m], modality(m)
            if isinstance(values, tf.data.Dataset):
                values = values.filter(lambda v: tf.strings.length(v) > 0)
            else:
                values = [v for v in values if len(v)] or list(values)
            # ``batch_size`` is optional for a modality: one that learns from a list need not take it.
            extra = {"batch_size": batch_size} if "batch_size" in inspect.signature(kind.adapt).parameters else {}
            kind.adapt(self.state(m), values, self.config[m], **extra)
        _BATCH_FUNCTIONS.pop(self, None)  # retrace with the new state

    # ---- the one preprocessing path ---------------------------------------------------------

    def limits(self, overrides=None):
        """The effective limits: this preprocessor's options, then ``overrides`` (see ``resolve_limits``)."""
        return resolve_limits(self.config, overrides)

    def preprocess_batch(self, raw, limits=None, guard=True, seeds=None):
        """A batch (dict of ``[B]`` tf.string) -> dict of batched features.

        An empty value means the modality is absent: its features are zeros and its
        entry in ``present`` is 0.

        Args:
            raw: dict modality -> ``[B]`` tf.string.
            limits: dict or None. Limits overriding the preset's for this call, as
                :meth:`limits` returns them (the SavedModel export passes its own).
            guard: bool. Name the example a decoder rejects inside the graph (serving);
                ``batch_function`` turns it off for ``tf.data``, where the task names it.
            seeds: ``[B, 2]`` int64 or None. Training only: one seed per example for the
                modalities' training-only raw augmentation (:meth:`raw_augmented`); None
                (serving, evaluation, predict) leaves the graph as without that option.
        """
        features, present = self.modality_features(raw, self.modalities, limits, guard, seeds)
        features["present"] = tf.stack([present[m] for m in self.modalities], axis=1)
        return features

    def modality_features(self, raw, modalities, limits=None, guard=True, seeds=None):
        """Features of some of the modalities, and each one's presence flag: ``preprocess_batch``'s parts.

        ``preprocess_batch`` is this over every modality, with the flags stacked into
        ``present``. A raw ``fit`` whose augmentation touches only some modalities
        computes the others once and these per epoch (:meth:`part_function`).

        Args:
            raw: dict modality -> ``[B]`` tf.string (at least ``modalities``).
            modalities: list of modality names, each one of this preprocessor's.
            limits: dict or None. As :meth:`preprocess_batch`.
            guard: bool. As :meth:`preprocess_batch`.
            seeds: ``[B, 2]`` int64 or None. As :meth:`preprocess_batch`.

        Returns:
            ``(features, present)``: the modalities' feature tensors, and dict modality ->
            ``[B]`` presence flag.
        """
        features, present = {}, {}
        for m in modalities:
            config = {**self.config[m], **((limits or {}).get(m) or {})}
            value = tf.reshape(tf.convert_to_tensor(raw[m], tf.string), [-1])
            mod = modality(m)
            # ``guard`` is optional for a modality: one whose decoder cannot fail need not take it.
            takes = inspect.signature(mod.preprocess_batch).parameters
            extra = {"guard": guard} if "guard" in takes else {}
            if seeds is not None and m in self.raw_augmented():
                extra["seeds"] = seeds
            feats, present[m] = mod.preprocess_batch(value, config, self.state(m), **extra)
            features.update(feats)
        return features, present

    def build(self, raw_shape=None, **call_named):
        shapes_by_name(call_named, raw_shape=raw_shape)  # no weights: the state is built in __init__

    def call(self, raw):
        return self.preprocess_batch(raw)

    def compute_output_spec(self, raw):
        batch = next(iter(raw.values())).shape[0]
        return {name: keras.KerasTensor((batch,) + tuple(shape), dtype=dtype)
                for name, (shape, dtype) in self.feature_shapes().items()}

    def batch_function(self):
        """``preprocess_batch`` as a ``tf.function`` traced once per preprocessor.

        ``tf.data`` traces a map function every time a pipeline is built; calling
        this from it reuses one trace (about a second saved per pipeline).

        Example:
        ```python
        fn = model.preprocessor.batch_function()
        features = fn({"image": tf.constant([png]), "audio": tf.constant([wav])})
        ```
        """
        return self._traced(training=False)

    def part_function(self, modalities, training=False):
        """:meth:`modality_features` of ``modalities`` as a ``tf.function`` traced once per preprocessor.

        It returns one dict: the features, and each modality's presence flag under
        :func:`present_key`. With ``training`` it takes ``(raw, seeds)`` and applies the
        training-only raw augmentation, as :meth:`training_map_function`.

        Example:
        ```python
        fn = model.preprocessor.part_function(["image"])
        part = fn({"image": tf.constant([png])})  # {"image": ..., present_key("image"): ...}
        ```
        """
        return self._traced(training, tuple(modalities))

    def _traced(self, training, part=None):
        functions = _BATCH_FUNCTIONS.setdefault(self, {})
        key = (training, part)
        if key not in functions:
            signature = [{m: tf.TensorSpec([None], tf.string, name=m) for m in part or self.modalities}]
            owner = weakref.ref(self)  # a strong reference from the value would keep the key alive forever

            # Unguarded: in a tf.data pipeline the task names an undecodable example itself.
            def run(raw, seeds=None):
                if part is None:
                    return owner().preprocess_batch(raw, guard=False, seeds=seeds)
                features, present = owner().modality_features(raw, part, guard=False, seeds=seeds)
                return {**features, **{present_key(m): flag for m, flag in present.items()}}

            if training:
                signature.append(tf.TensorSpec([None, 2], tf.int64, name="seeds"))
                functions[key] = tf.function(run, input_signature=signature, autograph=False)
            else:
                functions[key] = tf.function(lambda raw: run(raw), input_signature=signature, autograph=False)
        return functions[key]

    def map_function(self):
        """:meth:`batch_function` for ``tf.data`` elements ``x`` or ``(x, *labels)`` of batched raw strings.

        Example:
        ```python
        ds = raw_ds.batch(32).map(model.preprocessor.map_function(), num_parallel_calls=tf.data.AUTOTUNE)
        ```
        """
        pre, modalities = self.batch_function(), self.modalities

        def fn(*element):
            features = pre({m: element[0][m] for m in modalities})
            return (features,) + tuple(element[1:]) if len(element) > 1 else features

        return fn

    def training_map_function(self):
        """The training map for ``tf.data`` elements ``(x, *labels, seeds)``: features with raw augmentation.

        ``seeds`` (``[B, 2]`` int64) gives each example its own draw; the pipeline makes
        a new one every epoch (:func:`mmkeras.training.shuffle.epoch_example_seeds`).
        Without any :meth:`raw_augmented` modality the features equal :meth:`map_function`'s.

        Example:
        ```python
        ds = epoch_example_seeds(raw_ds, n, seed=0).batch(32).map(model.preprocessor.training_map_function())
        ```
        """
        pre, modalities = self._traced(training=True), self.modalities

        def fn(*element):
            features = pre({m: element[0][m] for m in modalities}, element[-1])
            return (features,) + tuple(element[1:-1]) if len(element) > 2 else features

        return fn

    def preprocess_example(self, raw):
        """One raw example (dict of scalar tf.string) -> dict of features (``preprocess_batch`` of one)."""
        batch = self.preprocess_batch({m: tf.reshape(tf.convert_to_tensor(raw[m], tf.string), [1])
                                       for m in self.modalities})
        return {k: v[0] for k, v in batch.items()}

    def get_config(self):
        return {**super().get_config(),
                "modalities": {m: modality(m).saved_config(self.config[m]) for m in self.modalities}}
