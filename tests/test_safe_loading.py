"""Loading a .keras file reads nothing outside the archive (Keras safe mode), old files still load.

A crafted archive whose config names a vocabulary file must not make mmkeras open
that file while ``keras.saving.load_model`` runs with its default ``safe_mode=True``:
every Python ``open`` (audit hook) and TensorFlow file read (``tf.io.gfile.GFile``)
is recorded during the load, and the error must not reveal whether the file exists.
"""

import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.preprocessing import text as text_ops

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VOCAB = ["[PAD]", "[UNK]", "a", "red", "blue", "cat", "dog", "##s"]
_OPENED = []  # paths opened while recording
_RECORDING = [False]


def _audit(event, args):
    if _RECORDING[0] and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed; this one only records while _RECORDING is set


def _record_reads(monkeypatch):
    """Start recording Python opens and TensorFlow GFile reads; returns the list they land in."""
    real_gfile = tf.io.gfile.GFile

    def gfile(path, *args, **kwargs):
        _OPENED.append(str(path))
        return real_gfile(path, *args, **kwargs)

    monkeypatch.setattr(tf.io.gfile, "GFile", gfile)
    _OPENED.clear()
    _RECORDING[0] = True
    return _OPENED


@pytest.fixture(autouse=True)
def _stop_recording():
    yield
    _RECORDING[0] = False


def _wordpiece_model(**preprocessing):
    return mmkeras.build_model(
        "text_small", num_classes=2,
        modalities={"text": {"preprocessing": {"tokenizer": "wordpiece", "sequence_length": 6, "vocab_size": 8,
                                               **preprocessing},
                             "tower": {"embedding_dim": 4, "filters": 2, "dim": 4}}})


def _rewrite_text_config(src, dst, **changes):
    """Copies a .keras archive, changing its text preprocessing config (a crafted file)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["config"]["modalities"]["text"]["preprocessing"].update(changes)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


@pytest.fixture(scope="module")
def saved_wordpiece(tmp_path_factory):
    path = tmp_path_factory.mktemp("wp") / "wp.keras"
    _wordpiece_model(vocabulary=VOCAB).save(path)
    return path


def test_crafted_archive_naming_a_vocabulary_file_reads_nothing(saved_wordpiece, tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("[PAD]\n[UNK]\nhunter2\ncorrect horse battery staple\n")
    crafted = _rewrite_text_config(saved_wordpiece, tmp_path / "crafted.keras", vocabulary=None,
                                   vocabulary_file=str(secret))
    opened = _record_reads(monkeypatch)
    with pytest.raises(ValueError, match="safe mode forbids reading files") as info:
        keras.saving.load_model(crafted)
    _RECORDING[0] = False
    assert not [p for p in opened if "secret" in p], opened
    assert str(secret) in str(info.value) and "safe_mode=False" in str(info.value)
    # A missing file gives the same answer: the load does not reveal what exists.
    missing = _rewrite_text_config(saved_wordpiece, tmp_path / "crafted2.keras", vocabulary=None,
                                   vocabulary_file=str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError) as info_missing:
        keras.saving.load_model(missing)
    assert str(info_missing.value).replace("nope.txt", "secret.txt") == str(info.value)


def test_crafted_vocabulary_path_for_the_vectorizer_is_refused(saved_wordpiece, tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\n")
    crafted = _rewrite_text_config(saved_wordpiece, tmp_path / "crafted.keras", tokenizer="vectorize",
                                   vocabulary=str(secret))
    opened = _record_reads(monkeypatch)
    with pytest.raises(ValueError, match="'vocabulary' must be a list of token strings"):
        keras.saving.load_model(crafted)
    assert not [p for p in opened if "secret" in p], opened


def test_unsafe_mode_keeps_the_old_behaviour(saved_wordpiece, tmp_path):
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB + ["zebra"]))
    crafted = _rewrite_text_config(saved_wordpiece, tmp_path / "trusted.keras", vocabulary=None,
                                   vocabulary_file=str(vocab_file), vocab_size=9)
    with pytest.raises(ValueError):
        keras.saving.load_model(crafted)
    model = keras.saving.load_model(crafted, safe_mode=False)  # the caller trusts the file: it is read
    assert model.preprocessor.config["text"]["vocabulary"] == VOCAB + ["zebra"]


def test_a_model_built_from_a_vocabulary_file_saves_the_tokens_not_the_path(tmp_path):
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB))
    model = _wordpiece_model(vocabulary_file=str(vocab_file))
    expected = model.predict({"text": ["red cats", "a dog"]}, verbose=0)
    model.save(tmp_path / "m.keras")
    config = zipfile.ZipFile(tmp_path / "m.keras").read("config.json").decode()
    assert str(vocab_file) not in config and "##s" in config
    vocab_file.unlink()
    shutil.move(tmp_path / "m.keras", tmp_path / "moved.keras")
    loaded = keras.saving.load_model(tmp_path / "moved.keras")  # safe mode, file gone: self-contained
    np.testing.assert_allclose(loaded.predict({"text": ["red cats", "a dog"]}, verbose=0), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["legacy_wordpiece", "legacy_vectorize"])
def test_keras_files_written_before_this_change_still_load(name, monkeypatch):
    recorded = json.loads((FIXTURES / "legacy_models.json").read_text())
    opened = _record_reads(monkeypatch)
    model = keras.saving.load_model(FIXTURES / f"{name}.keras")
    _RECORDING[0] = False
    # Only the archive, Keras's extraction of it and Python's own files were opened.
    allowed = (tempfile.gettempdir(), str(FIXTURES), sys.prefix, sys.base_prefix, "/proc/", "/dev/")
    assert not [p for p in opened if os.path.isabs(p) and not p.startswith(allowed)], opened
    np.testing.assert_allclose(model.predict({"text": recorded["texts"]}, verbose=0), recorded["scores"][name],
                               atol=1e-5)


def test_vocabulary_option_must_hold_tokens():
    with pytest.raises(ValueError, match="must be a list of token strings"):
        mmkeras.preprocessing.resolve_preprocessing("text", {"tokenizer": "wordpiece", "vocabulary": [1, 2]})
    with pytest.raises(ValueError, match="only read by tokenizer 'wordpiece'"):
        mmkeras.preprocessing.resolve_preprocessing("text", {"vocabulary_file": "/x"})
    assert text_ops.read_vocabulary  # the reader stays available for trusted, explicit use
