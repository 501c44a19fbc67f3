"""mmkeras's in-graph WordPiece ids equal keras-hub's BertTokenizer ids on real SST-2 sentences.

Both use all-MiniLM-L6-v2's ``vocab.txt`` (the ``minilm_l6`` weights); keras-hub's
tokenizer is the one ``BertTokenizer.from_preset`` builds from that folder. Parity
holds when mmkeras's standardisation keeps punctuation (``strip_punctuation=False``);
its default drops punctuation, which BERT vocabularies tokenise, and the ids then
differ by exactly the punctuation tokens. Neither adds ``[CLS]``/``[SEP]``: the
``text/keras_hub`` tower packs them (``start_token_id``/``end_token_id``).

The ``text_minilm`` preset's preprocessing (implied by the weights: BERT
normalisation) equals keras-hub's WordPieceTokenizer with accents stripped, which
is what the Hugging Face tokenizer MiniLM was trained with does for an uncased
vocabulary (keras-hub's BertTokenizer keeps accents).
"""

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.preprocessing import text as text_ops
from mmkeras.weights import resolve_weights

LENGTH = 96  # longer than every sentence used: nothing is cut


@pytest.fixture(scope="module")
def sentences(shared_data_dir):
    """All of SST-2 test (1,821) and dev (872), and the first 1,000 training sentences."""
    texts = [mmkeras.datasets.sst2(split, data_dir=shared_data_dir)[0]["text"] for split in ("test", "dev")]
    texts.append(mmkeras.datasets.sst2("train", data_dir=shared_data_dir)[0]["text"][:1000])
    return [str(t) for t in np.concatenate(texts)]


@pytest.fixture(scope="module")
def vocab_and_hub():
    folder = resolve_weights("minilm_l6")
    hub = keras_hub.tokenizers.BertTokenizer.from_preset(str(folder))
    return text_ops.read_vocabulary(str(folder / "vocab.txt")), hub


# Beyond SST-2: accents, case folding (sharp s, ligatures, full-width letters), CJK ideographs.
HARD = ["Café naïve façade RÉSUMÉ", "Straße and the ﬁnal ＦＵＬＬ width", "東京 and 北京 are cities",
        "Ångström über crème brûlée", "ŁÓDŹ, Zürich; São Paulo!"]


def test_text_minilm_preset_ids_equal_bert_tokenization(sentences, vocab_and_hub):
    vocab, _ = vocab_and_hub
    texts = sentences + HARD
    model = mmkeras.build_model("text_minilm", num_classes=2, compile=False,
                                modalities={"text": {"preprocessing": {"sequence_length": LENGTH}}})
    ours = model.preprocess({"text": texts})["text"]
    hub = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab, lowercase=True, strip_accents=True)
    theirs = _hub_ids(hub, texts)
    differ = np.flatnonzero((ours != theirs).any(axis=1))
    assert not len(differ), [texts[i] for i in differ[:3]]
    unknown = vocab.index("[UNK]")
    assert not (ours[-len(HARD):] == unknown).any()  # every hard sentence maps onto real pieces


def _hub_ids(hub, texts):
    out = np.zeros((len(texts), LENGTH), np.int64)
    for i, ids in enumerate(hub(tf.constant(texts))):
        ids = np.asarray(ids)
        assert len(ids) <= LENGTH
        out[i, : len(ids)] = ids
    return out


def _mmkeras_ids(vocab, texts, **standardize):
    tokenizer = text_ops.WordPieceTokenizer(vocab, LENGTH)
    return tokenizer(text_ops.standardize(tf.constant(texts), **standardize)).numpy()


def test_ids_equal_keras_hub_when_punctuation_is_kept(sentences, vocab_and_hub):
    vocab, hub = vocab_and_hub
    ours = _mmkeras_ids(vocab, sentences, lowercase=True, strip_punctuation=False)
    theirs = _hub_ids(hub, sentences)
    differ = np.flatnonzero((ours != theirs).any(axis=1))
    assert len(sentences) == 3693 and not len(differ), [sentences[i] for i in differ[:3]]
    assert (ours == vocab.index("[UNK]")).sum() < 0.001 * (ours > 0).sum()  # the vocabulary covers the text


def test_default_standardisation_differs_only_by_punctuation_tokens(sentences, vocab_and_hub):
    vocab, hub = vocab_and_hub
    ours = _mmkeras_ids(vocab, sentences)  # the text preprocessing defaults: punctuation stripped
    theirs = _hub_ids(hub, sentences)
    punctuation = {i for i, token in enumerate(vocab) if len(token) == 1 and not token.isalnum()}
    assert (ours != theirs).any(axis=1).mean() > 0.8  # most sentences have punctuation
    for a, b in zip(ours, theirs):
        assert [i for i in a if i] == [i for i in b if i and i not in punctuation]
