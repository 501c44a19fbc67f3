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

import mmkeras
from mmkeras.preprocessing import text as text_ops
from tests._crafted_keras import craft, record_access

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VOCAB = ["[PAD]", "[UNK]", "a", "red", "blue", "cat", "dog", "##s"]


def _wordpiece_model(**preprocessing):
    return mmkeras.build_model(
        "text_small", num_classes=2,
        modalities={"text": {"preprocessing": {"tokenizer": "wordpiece", "sequence_length": 6, "vocab_size": 8,
                                               **preprocessing},
                             "tower": {"embedding_dim": 4, "filters": 2, "dim": 4}}})


def _rewrite_text_config(src, dst, **changes):
    """Copies a .keras archive, changing its text preprocessing config (a crafted file)."""
    return craft(src, dst, lambda c: c["config"]["config"]["modalities"]["text"]["preprocessing"].update(changes))


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
    access = record_access(monkeypatch)
    with pytest.raises(ValueError, match="safe mode forbids reading files") as info:
        keras.saving.load_model(crafted)
    assert not access.stop().paths("secret")
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
    access = record_access(monkeypatch)
    with pytest.raises(ValueError, match="'vocabulary' must be a list of token strings"):
        keras.saving.load_model(crafted)
    assert not access.paths("secret")


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


def _outside_archive(paths, folder):
    """Paths other than the archive, Keras's extraction of it and Python's own files.

    mmkeras's own modules count as Python's files: a lazily imported module (e.g. the
    vocabulary layer's) is read on first use, so whether it shows up depended on which
    tests ran before in the process.
    """
    package = os.path.dirname(mmkeras.__file__) + os.sep
    allowed = (tempfile.gettempdir(), str(folder), sys.prefix, sys.base_prefix, package, "/proc/", "/dev/")
    return [p for p in paths if os.path.isabs(p) and not p.startswith(allowed)]


@pytest.mark.parametrize("name", ["legacy_wordpiece", "legacy_vectorize"])
def test_keras_files_written_before_this_change_still_load(name, monkeypatch):
    recorded = json.loads((FIXTURES / "legacy_models.json").read_text())
    access = record_access(monkeypatch)
    model = keras.saving.load_model(FIXTURES / f"{name}.keras")
    assert _outside_archive(access.stop().all_paths(), FIXTURES) == []
    np.testing.assert_allclose(model.predict({"text": recorded["texts"]}, verbose=0), recorded["scores"][name],
                               atol=1e-5)


def test_vocabulary_option_must_hold_tokens():
    with pytest.raises(ValueError, match="must be a list of token strings"):
        mmkeras.preprocessing.resolve_preprocessing("text", {"tokenizer": "wordpiece", "vocabulary": [1, 2]})
    with pytest.raises(ValueError, match="only read by tokenizer 'wordpiece'"):
        mmkeras.preprocessing.resolve_preprocessing("text", {"vocabulary_file": "/x"})
    assert text_ops.read_vocabulary  # the reader stays available for trusted, explicit use


# ---- issue 21: no mmkeras part opens a path, folder, URL or hub handle its config names ----------------

LITE = {"dim": 8, "stages": [[1, 3, 1, 1, 8]], "stem_filters": 8, "head_filters": 8}
BERT = {"class_name": "BertBackbone", "config": {"vocabulary_size": 50, "num_layers": 1, "num_heads": 2,
                                                 "hidden_dim": 8, "intermediate_dim": 16, "max_sequence_length": 8}}


def _task_tower(config):
    return config["config"]["config"]["modalities"][next(iter(config["config"]["config"]["modalities"]))]["tower"]


def _sequential_tower(config):
    return config["config"]["layers"][-1]["config"]


@pytest.fixture(scope="module")
def saved_towers(tmp_path_factory):
    """Tiny EfficientNet-Lite and keras-hub BERT towers, saved as mmkeras tasks and in a plain Sequential."""
    folder = tmp_path_factory.mktemp("towers")
    lite = mmkeras.build_model({"modalities": {"image": {
        "preprocessing": {"height": 16, "width": 16, "channels": 3},
        "tower": {"type": "image/efficientnet_lite", **LITE}}}}, num_classes=2)
    bert = mmkeras.build_model({"modalities": {"text": {
        "preprocessing": {"sequence_length": 6, "vocab_size": 50},
        "tower": {"type": "text/keras_hub", "backbone": BERT, "dim": 8}}}}, num_classes=2)
    seq_lite = keras.Sequential([keras.Input((16, 16, 3)), mmkeras.towers.TOWERS.build(
        "image/efficientnet_lite", **LITE)])
    seq_bert = keras.Sequential([keras.Input((6,), dtype="int32"), mmkeras.towers.TOWERS.build(
        "text/keras_hub", backbone=BERT, dim=8)])
    paths = {}
    for name, model in (("lite", lite), ("bert", bert), ("seq_lite", seq_lite), ("seq_bert", seq_bert)):
        paths[name] = folder / f"{name}.keras"
        model.save(paths[name])
    return paths


def _crafted_preset_folder(tmp_path):
    """A keras-hub style preset folder an attacker points at (config, tokenizer, vocabulary, weights)."""
    folder = tmp_path / "victim_preset"
    (folder / "assets" / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"class_name": "BertBackbone", "config": BERT["config"]}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\nsecret\n")
    (folder / "model.weights.h5").write_bytes(b"secret weights")
    return folder


ATTACKS = {  # option set in the tower config -> what the error names
    "weights_file": ("lite", {"weights": "/etc/passwd"}, "'weights'"),
    "weights_missing": ("lite", {"weights": "/no/such/file.pth"}, "'weights'"),
    "weights_registered_name": ("lite", {"weights": "efficientnet_lite0"}, "'weights'"),
    "preset_folder": ("bert", {"preset": "FOLDER", "backbone": None}, "'preset'"),
    "preset_no_weights": ("bert", {"preset": "FOLDER", "backbone": None, "load_weights": False}, "'preset'"),
    "preset_hub_handle": ("bert", {"preset": "hf://attacker/anything", "backbone": None}, "'preset'"),
}


@pytest.mark.parametrize("wrapper", ["task", "sequential"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_safe_mode_refuses_options_naming_anything_outside_the_archive(saved_towers, tmp_path, monkeypatch,
                                                                         attack, wrapper):
    base, options, key = ATTACKS[attack]
    folder = _crafted_preset_folder(tmp_path)
    options = {k: str(folder) if v == "FOLDER" else v for k, v in options.items()}
    tower = _task_tower if wrapper == "task" else _sequential_tower
    src = saved_towers[base if wrapper == "task" else f"seq_{base}"]
    crafted = craft(src, tmp_path / "crafted.keras", lambda c: tower(c).update(options))
    access = record_access(monkeypatch)
    with pytest.raises(ValueError, match=f"option {key}=.*outside the model archive") as info:
        keras.saving.load_model(crafted)
    access.stop()
    assert "safe_mode=False" in str(info.value)
    for target in ("/etc/passwd", "/no/such", str(folder), "efficientnet_lite0", "site-packages/efficientnet"):
        assert not access.paths(target), (target, access.all_paths())
    assert not access.sockets()


def test_a_missing_weights_file_gives_the_same_error_as_an_existing_one(saved_towers, tmp_path):
    secret = tmp_path / "secret.pth"
    secret.write_bytes(b"not a state dict")
    errors = []
    for path in (secret, tmp_path / "nope.pth"):
        crafted = craft(saved_towers["lite"], tmp_path / "c.keras",
                        lambda c, path=path: _task_tower(c).update(weights=str(path)))
        with pytest.raises(ValueError) as info:
            keras.saving.load_model(crafted)
        errors.append(str(info.value).replace(path.name, "X"))
    assert errors[0] == errors[1]


def test_trusted_files_naming_a_preset_still_load_without_safe_mode(saved_towers, tmp_path):
    folder = tmp_path / "preset"
    keras_hub = pytest.importorskip("keras_hub")
    keras_hub.models.BertBackbone(**BERT["config"]).save_to_preset(str(folder))
    crafted = craft(saved_towers["seq_bert"], tmp_path / "trusted.keras",
                    lambda c: _sequential_tower(c).update(preset=str(folder), backbone=None, load_weights=True))
    with pytest.raises(ValueError, match="'preset'"):
        keras.saving.load_model(crafted)
    model = keras.saving.load_model(crafted, safe_mode=False)
    assert model.layers[0].backbone.hidden_dim == 8


@pytest.mark.parametrize("preset", ["image_efficientnet_lite0", "text_minilm"])
def test_pretrained_presets_round_trip_under_safe_mode(preset, tmp_path, monkeypatch):
    model = mmkeras.build_model(preset, num_classes=2, preprocessor=False)
    features = {name: np.ones((1, *spec.shape[1:]), spec.dtype) for name, spec in model.input.items()}
    expected = model.predict(features, verbose=0)
    model.save(tmp_path / "m.keras")
    access = record_access(monkeypatch)
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # safe mode: the weights are in the archive
    assert not access.stop().paths("site-packages/gt_all") and not access.paths("efficientnet_lite0_pytorch")
    np.testing.assert_allclose(loaded.predict(features, verbose=0), expected, atol=1e-5)
