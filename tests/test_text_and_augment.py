"""Text standardisation/tokenisers (TextVectorization and WordPiece) and in-model augmentation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.layers import ImageAugmentation, SpecAugment, WordDropout
from mmkeras.preprocessing import Preprocessor
from mmkeras.preprocessing.text import standardize


def test_standardize_lowercases_strips_punctuation_and_stop_words():
    out = standardize(tf.constant(["The CAT, sat!  On the MAT...", "Ünïcode ÇA VA?"]), stop_words=["the", "on"])
    assert out.numpy().tolist() == [b"cat sat mat", "ünïcode ça va".encode()]


def test_standardize_never_fails_on_bad_bytes_or_huge_text():
    out = standardize(tf.constant([b"caf\xc3\xa9 \xff\xfe ok", b"word " * 20000]))
    assert out.numpy()[0] == "café ok".encode()
    assert len(out.numpy()[1]) <= 4096


def test_text_vectorization_adapt_pad_and_trim():
    pre = Preprocessor({"text": {"sequence_length": 4, "vocab_size": 20}})
    assert pre.needs_adapt
    pre.adapt(["red square", "blue circle", "red circle"])
    ids = pre.tokenize(tf.constant(["Red circle!", "red red red red red", "", "unknownword"])).numpy()
    vocab = pre.text_vectorizer.get_vocabulary()
    assert ids.dtype == np.int32 and ids.shape == (4, 4)
    assert [vocab[i] for i in ids[0][:2]] == ["red", "circle"] and ids[0][2:].tolist() == [0, 0]
    assert ids[1].tolist() == [vocab.index("red")] * 4  # trimmed to sequence_length
    assert ids[2].tolist() == [0, 0, 0, 0] and ids[3][0] == 1  # empty -> padding, unknown -> OOV


def test_wordpiece_tokenizer_from_vocab_file_builds_trains_and_exports(tmp_path):
    vocab = ["[PAD]", "[UNK]", "a", "cat", "dog", "##s", "red", "blue"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    model = mmkeras.build_model(
        "text_small", num_classes=2,
        modalities={"text": {"preprocessing": {"tokenizer": "wordpiece", "vocabulary_file": str(tmp_path / "vocab.txt"),
                                               "sequence_length": 6, "vocab_size": 16},
                             "tower": {"embedding_dim": 8, "filters": 4, "dim": 8}}},
    )
    ids = model.preprocess({"text": ["Red cats!", "a zebra"]})["text"]
    assert ids.tolist() == [[6, 3, 5, 0, 0, 0], [2, 1, 0, 0, 0, 0]]
    model.fit({"text": ["red cats", "blue dogs"] * 4}, np.array([0, 1] * 4), epochs=1, verbose=0)
    loaded = keras.saving.load_model(_save(model, tmp_path))
    np.testing.assert_allclose(loaded.predict({"text": ["red cats"]}, verbose=0),
                               model.predict({"text": ["red cats"]}, verbose=0), atol=1e-6)
    path = mmkeras.export_saved_model(model, tmp_path / "wp")
    out = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(["red cats"]))
    np.testing.assert_allclose(out["scores"].numpy(), model.predict({"text": ["red cats"]}, verbose=0), atol=1e-5)


def _save(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    return path


def test_wordpiece_requires_vocabulary():
    with pytest.raises(ValueError, match="needs 'vocabulary' or 'vocabulary_file'"):
        Preprocessor({"text": {"tokenizer": "wordpiece"}})
    with pytest.raises(ValueError, match="Unknown text preprocessing option"):
        Preprocessor({"text": {"sequence_len": 4}})


@pytest.mark.parametrize("layer,shape", [
    (ImageAugmentation(flip="horizontal", translate=0.2, rotate=0.1, zoom=0.1, rand_augment=True, seed=1),
     (2, 16, 16, 3)),
    (SpecAugment(time_masks=2, time_mask_width=5, freq_masks=2, freq_mask_width=3, seed=1), (2, 20, 12)),
])
def test_augmentation_only_in_training(layer, shape):
    x = np.random.default_rng(0).random(shape).astype("float32")
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    augmented = np.asarray(layer(x, training=True))
    assert augmented.shape == shape and np.all(np.isfinite(augmented)) and not np.allclose(augmented, x)
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_spec_augment_zeroes_bands():
    x = np.ones((4, 30, 10), "float32")
    y = np.asarray(SpecAugment(time_masks=1, time_mask_width=5, freq_masks=0, seed=3)(x, training=True))
    zero_frames = (y == 0).all(axis=2).sum(axis=1)
    assert np.all(zero_frames <= 5) and np.any(zero_frames > 0)


def test_word_dropout_hides_real_tokens_at_the_rate_and_keeps_padding():
    ids = np.tile(np.array([[5, 6, 7, 8, 9, 0, 0, 0]], "int32"), (2000, 1))
    layer = WordDropout(rate=0.25, unknown_id=1, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(ids, training=False)), ids)
    out = np.asarray(layer(ids, training=True))
    assert out.dtype == ids.dtype
    np.testing.assert_array_equal(out[:, 5:], 0)  # padding untouched: masks do not change
    hidden = out[:, :5] == 1
    assert np.all((out[:, :5] == ids[:, :5]) | hidden)  # a token is kept or becomes [UNK], nothing else
    assert abs(hidden.mean() - 0.25) < 0.01
    with pytest.raises(ValueError, match=r"word_dropout must be in \[0, 1\), got 1.5"):
        WordDropout(rate=1.5)


def test_text_word_dropout_uses_the_tokenizers_unknown_id(tmp_path):
    vocab = ["[PAD]", "a", "cat", "[UNK]", "dog"]
    model = mmkeras.build_model(
        "text_small", num_classes=2,
        modalities={"text": {"preprocessing": {"tokenizer": "wordpiece", "vocabulary": vocab, "sequence_length": 4,
                                               "vocab_size": 8},
                             "tower": {"embedding_dim": 8, "filters": 4, "dim": 8},
                             "augment": {"word_dropout": 0.5, "seed": 1}}},
    )
    assert model.get_layer("text_augment").unknown_id == 3
    history = model.fit({"text": ["a cat", "a dog"] * 8}, np.array([0, 1] * 8), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    first = model.predict({"text": ["a cat"]}, verbose=0)
    np.testing.assert_array_equal(first, model.predict({"text": ["a cat"]}, verbose=0))  # inactive at inference
    loaded = keras.saving.load_model(_save(model, tmp_path))
    np.testing.assert_allclose(loaded.predict({"text": ["a cat"]}, verbose=0), first, atol=1e-6)
    assert mmkeras.build_model("text_small", num_classes=2, modalities={"text": {"augment": {"word_dropout": 0.1}}}
                               ).get_layer("text_augment").unknown_id == 1
    with pytest.raises(ValueError, match=r"modalities.text.augment: unknown key\(s\) \['drop'\]"):
        mmkeras.build_model("text_small", num_classes=2, modalities={"text": {"augment": {"drop": 0.1}}})


def test_preset_with_augmentation_and_modality_dropout_trains(tiny_synthetic):
    (x, y), _ = tiny_synthetic
    model = mmkeras.build_model(
        "image_audio_small", num_classes=4, modality_dropout=0.3,
        modalities={"image": {"augment": {"translate": 0.1, "flip": "horizontal"}},
                    "audio": {"augment": {"time_masks": 1, "time_mask_width": 4, "freq_masks": 1,
                                          "freq_mask_width": 4}}},
    )
    xi = {"image": x["image"][:32], "audio": x["audio"][:32]}
    history = model.fit(xi, y[:32], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    first, second = model.predict(xi, verbose=0), model.predict(xi, verbose=0)
    np.testing.assert_array_equal(first, second)  # inference is deterministic: no augmentation/dropout
