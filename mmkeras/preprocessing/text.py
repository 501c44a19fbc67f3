"""Text preprocessing in the TF graph: standardise, drop stop words, tokenise, pad/trim.

Two tokenisers: Keras ``TextVectorization`` with a vocabulary adapted on training
text (the default), or tensorflow-text's ``FastWordpieceTokenizer`` from a vocab
file (BERT-style vocabularies; TF Serving links TF Text ops in).
"""

import tensorflow as tf

from mmkeras.modalities.limits import modality_limits

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


# CJK ideographs (the ranges BERT's BasicTokenizer splits into one word each).
_CJK = (r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}"
        r"\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]")


def standardize(text, *, lowercase=True, strip_punctuation=True, stop_words=None, max_chars=DEFAULT_MAX_CHARS,
                case_fold=False, strip_accents=False, remove_control=False, split_cjk=False):
    """Normalises UTF-8 text with TF string ops.

    Invalid UTF-8 is replaced (U+FFFD), never an error, so any bytes a client sends
    give a defined result. The last four options reproduce BERT's (uncased) text
    normalisation; they are off by default so existing models keep their behaviour.

    Args:
        text: tf.string tensor of any shape.
        lowercase: bool. Unicode-aware lowercasing.
        strip_punctuation: bool. Replace Unicode punctuation with spaces.
        stop_words: list of str or None. Whole words to remove (after lowercasing).
        max_chars: int. Keep at most this many characters.
        case_fold: bool. With ``lowercase``, lowercase by NFKC case folding
            (``tf_text.case_fold_utf8``, as keras-hub's WordPiece tokenizer): "Straße"
            -> "strasse", the "ﬁ" ligature -> "fi", full-width "ＡＢ" -> "ab".
        strip_accents: bool. Decompose (NFD) and drop combining marks (\\p{Mn}):
            "café" -> "cafe" (uncased BERT vocabularies have no accented pieces).
        remove_control: bool. Delete control and format characters (\\p{Cc}, \\p{Cf}:
            NUL, BEL, zero-width space, ...) other than whitespace, as BERT's tokenizer does.
        split_cjk: bool. Put spaces around CJK ideographs, so each is a word.

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
    if remove_control:
        text = tf.strings.regex_replace(text, r"[^\s\P{Cc}]|\p{Cf}", "")
    if split_cjk:
        text = tf.strings.regex_replace(text, _CJK, r" \0 ")
    if lowercase:
        text = _text_ops().case_fold_utf8(text) if case_fold else tf.strings.lower(text, encoding="utf-8")
    if strip_accents:
        text = tf.strings.regex_replace(_text_ops().normalize_utf8(text, "NFD"), r"\p{Mn}", "")
    if strip_punctuation:
        text = tf.strings.regex_replace(text, r"[\p{P}\p{S}]", " ")
    if stop_words:
        pattern = r"\b(?:" + "|".join(_escape(w) for w in stop_words) + r")\b"
        text = tf.strings.regex_replace(text, pattern, " ")
    text = tf.strings.regex_replace(text, r"\s+", " ")
    return tf.strings.strip(text)


def _text_ops():
    import tensorflow_text  # imported lazily: only BERT-style presets need it

    return tensorflow_text


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
