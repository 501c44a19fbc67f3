"""TensorBoard logging (scalars + confusion matrix), atomic checkpoints, manifests."""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.evaluation.confusion import confusion_matrix, render_confusion_matrix


def _event_tags(directory):
    tags = set()
    for path in tf.io.gfile.glob(str(directory / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
    return tags


def test_default_callbacks_write_scalars_confusion_matrix_and_checkpoint(tiny_synthetic, tmp_path):
    (x, y), _ = tiny_synthetic
    xi = {"image": x["image"][:48], "audio": x["audio"][:48]}
    model = mmkeras.build_model("image_audio_small", num_classes=4)
    model.fit(xi, y[:48], validation_split=0.25, epochs=2, verbose=0, callbacks=mmkeras.callbacks.default(tmp_path))
    assert {"epoch_loss", "epoch_accuracy"} <= _event_tags(tmp_path / "train")
    assert "epoch_loss" in _event_tags(tmp_path / "validation")
    assert "confusion_matrix/scores" in _event_tags(tmp_path / "images")
    best = keras.saving.load_model(tmp_path / "best.keras")
    assert best.predict(xi, verbose=0).shape == (48, 4)
    assert not list(tmp_path.glob(".tmp-*"))  # atomic save leaves no temporary file


def test_confusion_matrix_counts_and_image():
    matrix = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    image = render_confusion_matrix(matrix, cell=4)
    assert image.shape == (1, 12, 12, 3) and image.dtype == np.uint8
    assert image[0, 1, 1].tolist() == [8, 48, 107]  # a full row fraction is dark blue


def _write_files(tmp_path, x, y, n):
    rows = []
    for i in range(n):
        image = tmp_path / f"img{i}.png"
        audio = tmp_path / f"aud{i}.wav"
        image.write_bytes(x["image"][i])
        audio.write_bytes(x["audio"][i])
        rows.append({"image": image.name, "audio": audio.name if i != 1 else "", "text": x["text"][i],
                     "label": int(y[i])})
    return rows


def test_from_manifest_csv_and_jsonl(tiny_synthetic, tmp_path):
    (x, y), _ = tiny_synthetic
    rows = _write_files(tmp_path, x, y, 12)
    with open(tmp_path / "train.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "audio", "text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))

    raw = mmkeras.data.from_manifest(tmp_path / "train.csv", batch_size=5)
    features, labels = next(iter(raw))
    assert features["image"].dtype == tf.string and features["image"].shape == (5,)
    assert features["audio"].numpy()[1] == b""  # an empty cell is an absent modality
    assert features["image"].numpy()[0] == x["image"][0]
    np.testing.assert_array_equal(labels.numpy(), y[:5])

    model = mmkeras.build_model("image_audio_text_small", num_classes=4)
    model.adapt(x)
    ds = mmkeras.data.from_manifest(tmp_path / "train.jsonl", model=model, batch_size=4)
    features, _ = next(iter(ds))
    assert features["image"].shape[1:] == model.preprocessor.feature_shapes()["image"][0]
    np.testing.assert_array_equal(features["present"].numpy()[1], [1, 0, 1])
    assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["loss"][0])
    # A raw (unpreprocessed) manifest dataset goes through the same preprocessing in fit.
    assert np.isfinite(model.fit(raw, epochs=1, verbose=0).history["loss"][0])


def test_from_manifest_errors(tmp_path):
    (tmp_path / "m.csv").write_text("image,label\nmissing.png,0\n")
    with pytest.raises(ValueError, match="image file\\(s\\) do not exist.*missing.png"):
        mmkeras.data.from_manifest(tmp_path / "m.csv")
    (tmp_path / "n.csv").write_text("text,label\nhello,zero\n")
    with pytest.raises(ValueError, match="n.csv' line 2: label 'zero' is not one of the class names \\['one'\\]"):
        mmkeras.data.from_manifest(tmp_path / "n.csv", class_names=["one"])
    with pytest.raises(ValueError, match="does not exist"):
        mmkeras.data.from_manifest(tmp_path / "nope.csv")
