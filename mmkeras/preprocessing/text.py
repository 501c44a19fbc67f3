"""Text preprocessing in the TF graph: standardise, drop stop words, tokenise, pad/trim.

Two tokenisers: Keras ``TextVectorization`` with a vocabulary adapted on training
text (the default), or tensorflow-text's ``FastWordpieceTokenizer`` from a vocab
file (BERT-style vocabularies; TF Serving links TF Text ops in).
"""

import tensorflow as tf

from mmkeras.preprocessing.limits import modality_limits

# A short English list (NLTK-style); presets may pass their own list or None.
ENGLISH_STOP_WORDS = (
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with i me my we our you your he him his she her its them what which who "
    "whom am were been being have has had do does did so than too very s t can just should now"
).split()

# Bounds the cost of pathological inputs (a 20,000-character caption): longer text
# is cut before any regex runs; the tokeniser keeps far fewer tokens anyway.
DEFAULT_MAX_CHARS = modality_limits("text")["max_chars"]
# UTF-8 needs at most 4 bytes per character, and an invalid byte becomes one U+FFFD.
_MAX_BYTES_PER_CHAR = 4


def standardize(text, *, lowercase=True, strip_punctuation=True, stop_words=None, max_chars=DEFAULT_MAX_CHARS):
    """Normalises UTF-8 text with TF string ops.

    Invalid UTF-8 is replaced (U+FFFD), never an error, so any bytes a client sends
    give a defined result.

    Args:
        text: tf.string tensor of any shape.
        lowercase: bool. Unicode-aware lowercasing.
        strip_punctuation: bool. Replace Unicode punctuation with spaces.
        stop_words: list of str or None. Whole words to remove (after lowercasing).
        max_chars: int. Keep at most this many characters.

    Returns:
        tf.string tensor of the same shape, single-spaced and trimmed.

    Example:
    ```python
    standardize(tf.constant("The CAT, sat!"), stop_words=["the"])  # b"cat sat"
    ```
    """
    # Cut the bytes first, so a 100 MB string is never transcoded: any n bytes hold at
    # least n / 4 characters, so the first max_chars characters are unchanged.
    text = tf.strings.substr(text, 0, max_chars * _MAX_BYTES_PER_CHAR)
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    text = tf.strings.substr(text, 0, max_chars, unit="UTF8_CHAR")
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    if strip_punctuation:
        text = tf.strings.regex_replace(text, r"[\p{P}\p{S}]", " ")
    if stop_words:
        pattern = r"\b(?:" + "|".join(_escape(w) for w in stop_words) + r")\b"
        text = tf.strings.regex_replace(text, pattern, " ")
    text = tf.strings.regex_replace(text, r"\s+", " ")
    return tf.strings.strip(text)


def _escape(word):
    return "".join("\\" + c if not c.isalnum() else c for c in word)


def pad_or_trim(ragged_ids, length):
    """Turns a ragged ``[B, None]`` id tensor into dense ``[B, length]`` int32, 0-padded."""
    return tf.cast(ragged_ids.to_tensor(default_value=0, shape=[None, length]), tf.int32)


class WordPieceTokenizer:
    """tensorflow-text FastWordpiece tokenisation with BERT conventions.

    The vocabulary's first entry must be the padding token (id 0).

    Args:
        vocabulary: list of str. WordPiece vocabulary (``##`` marks suffixes).
        sequence_length: int. Output length.
        unknown_token: str. Token for out-of-vocabulary words.

    Example:
    ```python
    tok = WordPieceTokenizer(["[PAD]", "[UNK]", "cat", "##s"], sequence_length=4)
    tok(tf.constant(["cats"]))  # [[2, 3, 0, 0]]
    ```
    """

    def __init__(self, vocabulary, sequence_length, unknown_token="[UNK]"):
        import tensorflow_text as tf_text  # imported lazily: only WordPiece presets need it

        if unknown_token not in vocabulary:
            raise ValueError(f"WordPiece vocabulary must contain the unknown token {unknown_token!r}")
        self.sequence_length = sequence_length
        self.unknown_token = unknown_token
        self.tokenizer = tf_text.FastWordpieceTokenizer(
            vocab=list(vocabulary), unknown_token=unknown_token, token_out_type=tf.int64,
            no_pretokenization=False, support_detokenization=False,
        )

    def __call__(self, texts):
        return pad_or_trim(self.tokenizer.tokenize(texts), self.sequence_length)


def read_vocabulary(path):
    """Reads a one-token-per-line vocabulary file (BERT ``vocab.txt`` format)."""
    with tf.io.gfile.GFile(path, "r") as f:
        return [line.rstrip("\n") for line in f if line.rstrip("\n")]
