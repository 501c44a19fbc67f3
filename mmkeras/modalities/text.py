"""The text modality: UTF-8 strings -> ``[L]`` int32 token ids (0 = padding).

Standardisation and tokenisation are graph code in :mod:`mmkeras.preprocessing.text`;
the tokenizer's vocabulary is the preprocessor's state (adapted on training text, or a
WordPiece vocabulary kept in the config).
"""

from mmkeras.layers import WordDropout
from mmkeras.modalities.base import MODALITIES, Modality

TEXT_DEFAULTS = {
    "sequence_length": 32, "vocab_size": 10000, "lowercase": True, "strip_punctuation": True,
    "stop_words": None, "tokenizer": "vectorize", "vocabulary": None, "vocabulary_file": None,
    # BERT's normalisation (see mmkeras.preprocessing.text.standardize); presets over BERT-family towers set them.
    "case_fold": False, "strip_accents": False, "remove_control": False, "split_cjk": False,
}
BERT_NORMALIZATION = {"lowercase": True, "strip_punctuation": False, "case_fold": True, "strip_accents": True,
                      "remove_control": True, "split_cjk": True}
_STANDARDIZE_KEYS = ("lowercase", "strip_punctuation", "max_chars", "case_fold", "strip_accents",
                     "remove_control", "split_cjk")
TOKENIZERS = ("vectorize", "wordpiece")
UNKNOWN_TOKEN = "[UNK]"


def _in_safe_mode():
    """True while Keras deserialises in safe mode (``load_model(..., safe_mode=True)``, the default)."""
    from keras.src.saving import serialization_lib

    return bool(serialization_lib.in_safe_mode())


def read_vocabulary(path):
    """Reads a one-token-per-line vocabulary file (BERT ``vocab.txt`` format)."""
    if "://" in str(path):  # gs://, s3://...: TensorFlow's file system
        from mmkeras.preprocessing import text as text_ops

        return text_ops.read_vocabulary(path)
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.rstrip("\n")]


def _resolve_vocabulary(config):
    """Checks ``vocabulary``; reads a WordPiece ``vocabulary_file`` into it (never in safe mode).

    The tokens are kept in the config, so a saved model never names a file. While
    Keras loads a model in safe mode (``keras.saving.load_model``'s default) no
    file is read: a config that names one is refused.
    """
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
    return {**config, "vocabulary": read_vocabulary(path), "vocabulary_file": None}


@MODALITIES.register("text")
class TextModality(Modality):
    """UTF-8 text tokenised by an adapted vocabulary (``vectorize``) or a WordPiece vocabulary."""

    description = "UTF-8 strings, '' when absent"
    serving_expects = "UTF-8 text"
    order = 2
    defaults = TEXT_DEFAULTS
    augment_options = frozenset({"word_dropout", "seed"})

    def check(self, config):
        if config["tokenizer"] not in TOKENIZERS:
            raise ValueError(f"text tokenizer must be one of {TOKENIZERS}, got {config['tokenizer']!r}")
        if not isinstance(config["sequence_length"], int) or config["sequence_length"] < 1:
            raise ValueError(f"text sequence_length must be a positive integer, got {config['sequence_length']!r}")
        return _resolve_vocabulary(config)

    def feature_specs(self, config):
        return {self.name: ((config["sequence_length"],), "int32")}

    def saved_config(self, config):
        if config["tokenizer"] == "vectorize":  # the adapted vocabulary travels as a .keras asset
            return {**config, "vocabulary": None}
        return config

    def tower_defaults(self, config):
        return {"vocab_size": config["vocab_size"]}

    def unknown_id(self, config):
        """Id of the unknown token: 1 for the adapted vocabulary (0 is padding), ``[UNK]``'s row for WordPiece."""
        if config["tokenizer"] == "wordpiece" and config["vocabulary"]:
            return list(config["vocabulary"]).index(UNKNOWN_TOKEN)
        return 1

    def augmentation(self, options, config, name):
        if not options:
            return None
        return WordDropout(options.get("word_dropout", 0.0), unknown_id=self.unknown_id(config),
                           seed=options.get("seed"), name=name)

    # ---- preprocessing (TensorFlow) ---------------------------------------------------------

    def standardize_options(self, config):
        from mmkeras.preprocessing import text as text_ops

        stop_words = text_ops.ENGLISH_STOP_WORDS if config["stop_words"] == "english" else config["stop_words"]
        return {"stop_words": stop_words, **{key: config[key] for key in _STANDARDIZE_KEYS}}

    def make_state(self, config):
        from mmkeras.preprocessing import text as text_ops
        from mmkeras.preprocessing.vocabulary import TextVectorizer

        if config["tokenizer"] == "vectorize":
            return {"wordpiece": None, "vectorizer": TextVectorizer(
                max_tokens=config["vocab_size"], standardize=None, split="whitespace", output_mode="int",
                output_sequence_length=config["sequence_length"], vocabulary=config["vocabulary"],
                name=f"{self.name}_vectorizer")}
        vocab = config["vocabulary"]  # a vocabulary_file was read into it when the config was resolved
        if not vocab:
            raise ValueError("text tokenizer 'wordpiece' needs 'vocabulary' or 'vocabulary_file'")
        if len(vocab) > config["vocab_size"]:
            raise ValueError(f"WordPiece vocabulary has {len(vocab)} tokens > vocab_size={config['vocab_size']}")
        return {"vectorizer": None,
                "wordpiece": text_ops.WordPieceTokenizer(vocab, config["sequence_length"], UNKNOWN_TOKEN)}

    def needs_adapt(self, state):
        vectorizer = state.get("vectorizer")
        return vectorizer is not None and vectorizer.vocabulary_size() <= 2

    def adapt(self, state, values, config, batch_size=256):
        import tensorflow as tf

        from mmkeras.preprocessing import text as text_ops

        vectorizer = state.get("vectorizer")
        if vectorizer is None:
            return
        options = self.standardize_options(config)
        ds = values if isinstance(values, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(
            tf.constant(list(values), tf.string))
        ds = ds.batch(batch_size).map(lambda t: text_ops.standardize(t, **options),
                                      num_parallel_calls=tf.data.AUTOTUNE)
        vectorizer.adapt(ds)

    def preprocess_batch(self, values, config, state, guard=True):
        import tensorflow as tf

        from mmkeras.preprocessing import text as text_ops

        present = tf.cast(tf.strings.length(values) > 0, tf.float32)
        texts = text_ops.standardize(values, **self.standardize_options(config))
        if state.get("wordpiece") is not None:
            ids = state["wordpiece"](texts)
        else:
            ids = tf.cast(state["vectorizer"](texts), tf.int32)
        return {self.name: ids}, present

    def example(self, config):
        return b"a small example caption"

    # ---- evaluation ---------------------------------------------------------------------------

    corruption = "word_dropout"
    corruption_severities = (0.1, 0.3, 0.5)

    def corrupt_value(self, value, severity, rng):
        """Drops each whitespace-separated word with probability ``severity`` (keeps at least one)."""
        words = str(value).split()
        if not words:
            return value
        keep = rng.random(len(words)) >= severity
        if not keep.any():  # an empty string would mean "absent", a different condition
            keep[rng.integers(len(words))] = True
        return " ".join(w for w, k in zip(words, keep) if k)

    def element_names(self, feature, config, state):
        """The token of each id: the adapted vocabulary's, or the WordPiece vocabulary's."""
        vectorizer = state.get("vectorizer")
        vocabulary = vectorizer.get_vocabulary() if vectorizer is not None else (config or {}).get("vocabulary")
        if not vocabulary:
            return [str(i) for i in feature]
        return [str(vocabulary[i]) if 0 <= i < len(vocabulary) else f"<{i}>" for i in feature]

    def explanation_panels(self, feature, attribution, names=None):
        """The tokens left to right (padding, id 0, left out) on backgrounds coloured by their scores."""
        names = names or [str(i) for i in feature]
        pairs = [(names[i], float(attribution[i])) for i in range(len(feature)) if feature[i] != 0]
        limit = max((abs(s) for _, s in pairs), default=0.0)
        return [{"kind": "tokens", "name": self.name, "width": 1.75, "values": pairs,
                 "title": f"{self.name}: integrated gradients per token (max |score| {limit:.3g})"}]
