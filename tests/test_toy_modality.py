"""A fourth modality registered from user code works at parity with image, audio and text.

``sensor`` (tests/toy_modality.py) is declared in one class outside mmkeras: its files
(magic bytes), limit, request checks and learnable state (per-reading mean/variance).
Without touching an mmkeras file it: loads from a manifest of its files (bad files
refused by line) and trains, its state learned by the library in ``fit``; predicts
from the command line (``mmkeras predict --plugin toy_modality FILE``); saves and
reloads; exports a SavedModel that serves raw file bytes with its checks enforced.
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import cli
from mmkeras.data.manifest import load_manifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import toy_modality as toy  # noqa: E402
from serving_utils import rest_format  # noqa: E402


def _manifest(tmp_path, name, files, labels):
    """A CSV manifest of sensor files (written under tmp_path/files) and labels."""
    folder = tmp_path / "files"
    folder.mkdir(exist_ok=True)
    lines = ["sensor,label"]
    for i, (data, label) in enumerate(zip(files, labels)):
        (folder / f"{name}-{i}.sns").write_bytes(data)
        lines.append(f"files/{name}-{i}.sns,{label}")
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _stats(model):
    return model.preprocessor.state(toy.NAME)["stats"]


def test_a_user_modality_trains_from_its_files_predicts_exports_and_serves(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model(toy.PRESET, num_classes=2)
    readings, labels = toy.make_data(160)
    test_readings, test_labels = toy.make_data(64, seed=1)
    test_files = toy.sensor_files(test_readings)

    # Its state must learn from data first; the library says what to call, in the modality's words.
    with pytest.raises(ValueError, match=r"has sensor statistics that have not been learned .*"
                                         r"model\.adapt\(\{'sensor': train_values\}\)"):
        model.predict({toy.NAME: test_files[:2]}, verbose=0)

    # A manifest of its files: a wrong kind of file and an oversized one are refused by line.
    png = mmkeras.codecs.encode_png(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"line 3: sensor file .*bad-1.sns' is an image, not an MMSENS1 sensor"):
        load_manifest(_manifest(tmp_path, "bad", [test_files[0], png], [0, 1]), model=model)
    with pytest.raises(ValueError, match=r"line 2: sensor file .* more than the limit max_bytes=4096"):
        load_manifest(_manifest(tmp_path, "big", [toy.MAGIC + bytes(5000)], [0]), model=model)

    # fit on the manifest: the library calls the modality's adapt (its files, training data only).
    train = _manifest(tmp_path, "train", toy.sensor_files(readings), labels)
    model.fit(str(train), epochs=20, verbose=0)
    assert _stats(model).learned_from() == len(readings)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(_stats(model).mean), readings.mean(axis=0), rtol=1e-4)
    scores = model.predict({toy.NAME: test_files}, verbose=0)
    assert (scores.argmax(axis=1) == test_labels).mean() >= 0.8

    # The learned state changes predictions; model.adapt(manifest) learns it again through the library.
    _stats(model).mean.assign(np.zeros(toy.SIZE))
    _stats(model).count.assign(0.0)
    with pytest.raises(ValueError, match="sensor statistics that have not been learned"):
        model.predict({toy.NAME: test_files}, verbose=0)
    _stats(model).count.assign(1.0)
    assert np.abs(model.predict({toy.NAME: test_files}, verbose=0) - scores).max() > 0.1
    _stats(model).count.assign(0.0)
    model.adapt(str(train))
    np.testing.assert_allclose(model.predict({toy.NAME: test_files}, verbose=0), scores, atol=1e-5)

    # Saved and reloaded (the state travels in the .keras file); the command line finds it by --plugin.
    path = tmp_path / "sensor.keras"
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path).predict({toy.NAME: test_files[:4]}, verbose=0),
                               scores[:4], atol=1e-5)
    (tmp_path / "one.sns").write_bytes(test_files[0])
    (tmp_path / "cat.png").write_bytes(png)
    capsys.readouterr()
    assert cli.main(["predict", str(path), str(tmp_path / "one.sns"), "--json", "--plugin", "toy_modality"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["class"] == model.class_names[scores[0].argmax()]
    assert answer["score"] == pytest.approx(float(scores[0].max()), abs=1e-5)
    assert cli.main(["predict", str(path), str(tmp_path / "cat.png")]) == 1
    assert "is image, but the model takes ['sensor']" in capsys.readouterr().err
    assert cli.main(["inspect", str(path)]) == 0
    assert "sensor statistics from 160 files" in capsys.readouterr().out
    assert cli.main(["predict", str(path), str(tmp_path / "one.sns"), "--plugin", "no_such_plugin"]) == 1
    assert "--plugin 'no_such_plugin' could not be imported" in capsys.readouterr().err

    # A SavedModel serving raw file bytes, with the modality's limit and checks in the graph.
    export = mmkeras.export_saved_model(model, tmp_path / "export")
    meta = json.loads((Path(export) / "assets.extra" / "mmkeras.json").read_text())
    assert meta["limits"][toy.NAME] == {"max_bytes": toy.MAX_BYTES}
    assert meta["inputs"][toy.NAME]["expects"] == "MMSENS1 sensor file bytes"
    loaded = tf.saved_model.load(export)
    serve = loaded.signatures["serving_default"]
    body = mmkeras.serving.make_rest_body({toy.NAME: test_files[:4]}, modalities=export)
    tensors, _ = rest_format.request_to_tensors(body, {toy.NAME: "DT_STRING"})
    np.testing.assert_allclose(serve(sensor=tf.constant(list(tensors[toy.NAME])))["scores"].numpy(), scores[:4],
                               atol=1e-5)
    named = r"input \\?'sensor\\?', example 0: "  # TensorFlow escapes the quotes of an assertion's message
    for data, message in ((png, "not a sensor file"),
                          (toy.MAGIC + bytes(5000), "5008 bytes, more than the limit max_bytes=4096"),
                          (toy.MAGIC + bytes(8), "16 bytes; a sensor file of 4 readings")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=named + message):
            serve(sensor=tf.constant([data]))
    features = loaded.signatures["features"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=named + "holds NaN or Inf"):
        features(sensor=tf.constant([[np.nan] * toy.SIZE]), present=tf.constant([[1.0]]))
