"""Raw example -> model features, the one code path for tf.data and for serving.

:class:`Preprocessor` owns the per-modality preprocessing config and the only
learned state of preprocessing (the text vocabulary). ``preprocess_batch`` turns a
``[B]`` batch of raw strings into batched features; it runs inside
``tf.data.Dataset.map`` (after ``batch``) and inside the exported SavedModel, and
``preprocess_example`` is the same function on a batch of one, so training and
serving cannot disagree.
"""

import os
import weakref

import keras
import tensorflow as tf

from mmkeras.preprocessing import audio as audio_ops
from mmkeras.preprocessing import image as image_ops
from mmkeras.preprocessing import limits as limits_lib
from mmkeras.preprocessing import text as text_ops

MODALITY_ORDER = ("image", "audio", "text")

IMAGE_DEFAULTS = {"height": 32, "width": 32, "channels": 3, "resize": "crop", "normalize": "unit"}
AUDIO_DEFAULTS = {
    "sample_rate": 16000, "duration_s": 1.0, "frame_length_ms": 25.0, "frame_step_ms": 10.0,
    "n_mels": 64, "fmin": 20.0, "fmax": None, "n_mfcc": None,
    # Long-clip mode: up to max_windows windows of duration_s, features [N, T, F]
    # plus an "audio_windows" [N] validity mask (None: trim to duration_s).
    "max_windows": None,
}
TEXT_DEFAULTS = {
    "sequence_length": 32, "vocab_size": 10000, "lowercase": True, "strip_punctuation": True,
    "stop_words": None, "tokenizer": "vectorize", "vocabulary": None, "vocabulary_file": None,
}
# Every modality also takes its limits (mmkeras/preprocessing/limits.py) as options.
DEFAULTS = {m: {**d, **limits_lib.modality_limits(m)}
            for m, d in {"image": IMAGE_DEFAULTS, "audio": AUDIO_DEFAULTS, "text": TEXT_DEFAULTS}.items()}
# Preprocessor -> its traced batch function; kept off the layer so SavedModel/.keras tracking never sees it.
_BATCH_FUNCTIONS = weakref.WeakKeyDictionary()


def resolve_preprocessing(modality, config):
    """Fills defaults and rejects unknown keys of one modality's preprocessing config.

    A WordPiece ``vocabulary_file`` is read here, once, and the tokens are kept in
    the config (``vocabulary``), so a saved model never names a file. While Keras
    loads a model in safe mode (``keras.saving.load_model``'s default) no file is
    read: a config that names one is refused.
    """
    if modality not in DEFAULTS:
        raise ValueError(f"Unknown modality {modality!r}; expected one of {list(MODALITY_ORDER)}")
    config = dict(config or {})
    unknown = set(config) - set(DEFAULTS[modality])
    if unknown:
        raise ValueError(
            f"Unknown {modality} preprocessing option(s) {sorted(unknown)}; known: {sorted(DEFAULTS[modality])}"
        )
    config = {**DEFAULTS[modality], **config}
    for key in limits_lib.modality_limits(modality):
        limits_lib.check_limit(key, config[key], modality)
    return _resolve_vocabulary(config) if modality == "text" else config


def _in_safe_mode():
    """True while Keras deserialises in safe mode (``load_model(..., safe_mode=True)``, the default)."""
    from keras.src.saving import serialization_lib

    return bool(serialization_lib.in_safe_mode())


def _resolve_vocabulary(config):
    """Checks ``vocabulary``; reads a WordPiece ``vocabulary_file`` into it (never in safe mode)."""
    vocab, path = config["vocabulary"], config["vocabulary_file"]
    if vocab is not None and (isinstance(vocab, (str, bytes)) or not all(isinstance(t, str) for t in vocab)):
        raise ValueError("text preprocessing 'vocabulary' must be a list of token strings (a file goes in "
                         f"'vocabulary_file'), got {type(vocab).__name__}")
    if path is None:
        return config
    if config["tokenizer"] != "wordpiece":
        raise ValueError("text preprocessing 'vocabulary_file' is only read by tokenizer 'wordpiece'; for "
                         "'vectorize' pass vocabulary=[...] or let fit() adapt it")
    if vocab is not None:  # the tokens are already here (a saved model): the file is not read
        return {**config, "vocabulary_file": None}
    if _in_safe_mode():
        raise ValueError(
            "mmkeras: this model's text preprocessing names the vocabulary file "
            f"{str(path)!r} outside the model archive, and Keras safe mode forbids reading files a "
            "saved config names (it could be any file on this machine). Models saved by this "
            "mmkeras keep their vocabulary inside the archive. If you trust this file, load it with "
            "keras.saving.load_model(path, safe_mode=False), then save it again.")
    return {**config, "vocabulary": text_ops.read_vocabulary(path), "vocabulary_file": None}


class _EmptyTolerantStringLookup(keras.layers.StringLookup):
    """StringLookup whose saved vocabulary may be empty (a text model never adapted).

    Keras cannot load such a layer (the lookup table refuses empty keys), yet saving
    an unadapted model is legitimate; loading then keeps the empty vocabulary.
    """

    def load_assets(self, dir_path):
        path = os.path.join(dir_path, "vocabulary.txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if not [t for t in f.read().split("\n") if t and t != self.oov_token]:
                    return
        super().load_assets(dir_path)


@keras.saving.register_keras_serializable(package="mmkeras")
class TextVectorizer(keras.layers.TextVectorization):
    """``TextVectorization`` that can be saved and reloaded before it is adapted."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # TextVectorization builds its StringLookup internally; swap in the tolerant subclass.
        self._lookup_layer.__class__ = _EmptyTolerantStringLookup
        # It runs in tf.data and the export graph, never inside the model's train step, so it
        # must not veto XLA for the model (Keras checks every tracked layer's supports_jit;
        # without this JAX trained op by op, about 4x slower).
        self.supports_jit = True
        self._lookup_layer.supports_jit = True


@keras.saving.register_keras_serializable(package="mmkeras")
class Preprocessor(keras.layers.Layer):
    """Turns raw inputs (image bytes, WAV bytes, UTF-8 text) into model features.

    Args:
        modalities: dict. ``{modality: preprocessing config}`` for the modalities
            the model takes; missing keys get the defaults in this module.

    Example:
    ```python
    pre = Preprocessor({"image": {"height": 28, "width": 28}, "text": {}})
    pre.adapt(["a red square", "a blue circle"])
    features = pre.preprocess_batch({"image": tf.constant([png]), "text": tf.constant(["a red square"])})
    # {"image": [1, 28, 28, 3] float32, "text": [1, 32] int32, "present": [1, 2] float32}
    ```
    """

    def __init__(self, modalities, **kwargs):
        super().__init__(**kwargs)
        unknown = set(modalities) - set(MODALITY_ORDER)
        if unknown:
            raise ValueError(f"Unknown modality {sorted(unknown)}; expected a subset of {list(MODALITY_ORDER)}")
        self.modalities = [m for m in MODALITY_ORDER if m in modalities]
        if not self.modalities:
            raise ValueError("A model needs at least one modality")
        self.config = {m: resolve_preprocessing(m, modalities[m]) for m in self.modalities}
        self.text_vectorizer = None
        self.wordpiece = None
        if "text" in self.config:
            self._build_tokenizer(self.config["text"])

    def _build_tokenizer(self, cfg):
        stop_words = text_ops.ENGLISH_STOP_WORDS if cfg["stop_words"] == "english" else cfg["stop_words"]
        self._standardize_kwargs = {
            "lowercase": cfg["lowercase"], "strip_punctuation": cfg["strip_punctuation"], "stop_words": stop_words,
            "max_chars": cfg["max_chars"],
        }
        if cfg["tokenizer"] == "vectorize":
            self.text_vectorizer = TextVectorizer(
                max_tokens=cfg["vocab_size"], standardize=None, split="whitespace",
                output_mode="int", output_sequence_length=cfg["sequence_length"],
                vocabulary=cfg["vocabulary"], name="text_vectorizer",
            )
        elif cfg["tokenizer"] == "wordpiece":
            vocab = cfg["vocabulary"]  # a vocabulary_file was read into it by resolve_preprocessing
            if not vocab:
                raise ValueError("text tokenizer 'wordpiece' needs 'vocabulary' or 'vocabulary_file'")
            if len(vocab) > cfg["vocab_size"]:
                raise ValueError(f"WordPiece vocabulary has {len(vocab)} tokens > vocab_size={cfg['vocab_size']}")
            self.wordpiece = text_ops.WordPieceTokenizer(vocab, cfg["sequence_length"])
        else:
            raise ValueError(f"text tokenizer must be 'vectorize' or 'wordpiece', got {cfg['tokenizer']!r}")

    def text_unknown_id(self):
        """Id of the unknown token: 1 for the vectorizer (0 is padding), ``[UNK]``'s row for WordPiece."""
        if self.wordpiece is not None:
            return self.config["text"]["vocabulary"].index(self.wordpiece.unknown_token)
        return 1

    # ---- feature specs -------------------------------------------------------------

    def feature_shapes(self):
        """Per-feature ``(shape without batch, dtype)``, including ``present``."""
        shapes = {}
        if "image" in self.config:
            c = self.config["image"]
            shapes["image"] = ((c["height"], c["width"], c["channels"]), "float32")
        if "audio" in self.config:
            shapes["audio"] = (audio_ops.audio_feature_shape(**self.config["audio"]), "float32")
            if self.config["audio"]["max_windows"]:
                shapes["audio_windows"] = ((int(self.config["audio"]["max_windows"]),), "float32")
        if "text" in self.config:
            shapes["text"] = ((self.config["text"]["sequence_length"],), "int32")
        shapes["present"] = ((len(self.modalities),), "float32")
        return shapes

    # ---- text vocabulary -------------------------------------------------------------

    @property
    def needs_adapt(self):
        """True when the model takes text and its vocabulary is still empty."""
        return self.text_vectorizer is not None and self.text_vectorizer.vocabulary_size() <= 2

    def standardize_text(self, text, max_chars=None):
        kwargs = self._standardize_kwargs if max_chars is None else {**self._standardize_kwargs, "max_chars": max_chars}
        return text_ops.standardize(text, **kwargs)

    def adapt(self, texts, batch_size=256):
        """Learns the text vocabulary from training texts (after standardisation).

        Args:
            texts: list/array of str, or a ``tf.data.Dataset`` of strings.
            batch_size: int. Batch size used while counting tokens.
        """
        if self.text_vectorizer is None:
            return
        ds = texts if isinstance(texts, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(
            tf.constant(list(texts), tf.string)
        )
        ds = ds.batch(batch_size).map(self.standardize_text, num_parallel_calls=tf.data.AUTOTUNE)
        self.text_vectorizer.adapt(ds)
        _BATCH_FUNCTIONS.pop(self, None)  # retrace with the new vocabulary

    def tokenize(self, texts, max_chars=None):
        """``[B]`` strings -> ``[B, sequence_length]`` int32 ids (text cut to ``max_chars`` first)."""
        texts = self.standardize_text(texts, max_chars)
        if self.wordpiece is not None:
            return self.wordpiece(texts)
        return tf.cast(self.text_vectorizer(texts), tf.int32)

    # ---- the one preprocessing path ---------------------------------------------------

    def limits(self, overrides=None):
        """The effective limits: this preprocessor's options, then ``overrides`` (see `resolve_limits`)."""
        return limits_lib.resolve_limits(self.config, overrides)

    def preprocess_batch(self, raw, limits=None, guard=True):
        """A batch (dict of ``[B]`` tf.string) -> dict of batched features.

        An empty value means the modality is absent: its features are zeros and its
        entry in ``present`` is 0. Audio and text are processed as whole batches
        (one STFT, one tokenizer call); images are decoded one by one.

        Args:
            raw: dict modality -> ``[B]`` tf.string.
            limits: dict or None. Limits overriding the preset's for this call, as
                `limits()` returns them (the SavedModel export passes its own).
            guard: bool. Name the example of an image the decoder rejects (see
                `image_features_batch`); ``batch_function`` turns it off for ``tf.data``.
        """
        config = {m: {**self.config[m], **((limits or {}).get(m) or {})} for m in self.modalities}
        features, present = {}, []
        for m in self.modalities:
            value = tf.reshape(tf.convert_to_tensor(raw[m], tf.string), [-1])
            if m == "image":
                feat, flag = image_ops.image_features_batch(value, **config["image"], name="image", guard=guard)
            elif m == "audio" and config["audio"]["max_windows"]:
                feat, flag, features["audio_windows"] = audio_ops.audio_window_features_batch(
                    value, **config["audio"], name="audio")
            elif m == "audio":
                cfg = {k: v for k, v in config["audio"].items() if k != "max_windows"}
                feat, flag = audio_ops.audio_features_batch(value, **cfg, name="audio")
            else:
                flag = tf.cast(tf.strings.length(value) > 0, tf.float32)
                feat = self.tokenize(value, max_chars=config["text"]["max_chars"])
            features[m] = feat
            present.append(flag)
        features["present"] = tf.stack(present, axis=1)
        return features

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
        fn = _BATCH_FUNCTIONS.get(self)
        if fn is None:
            signature = [{m: tf.TensorSpec([None], tf.string, name=m) for m in self.modalities}]
            owner = weakref.ref(self)  # a strong reference from the value would keep the key alive forever
            # Unguarded: in a tf.data pipeline the model names an undecodable example itself.
            fn = tf.function(lambda raw: owner().preprocess_batch(raw, guard=False), input_signature=signature,
                             autograph=False)
            _BATCH_FUNCTIONS[self] = fn
        return fn

    def preprocess_example(self, raw):
        """One raw example (dict of scalar tf.string) -> dict of features (``preprocess_batch`` of one)."""
        batch = self.preprocess_batch({m: tf.reshape(tf.convert_to_tensor(raw[m], tf.string), [1])
                                       for m in self.modalities})
        return {k: v[0] for k, v in batch.items()}

    def get_config(self):
        config = {**super().get_config(), "modalities": self.config}
        if self.text_vectorizer is not None:
            # The adapted vocabulary travels as a .keras asset, not in the config.
            config["modalities"] = {**self.config, "text": {**self.config["text"], "vocabulary": None}}
        return config
