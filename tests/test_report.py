"""The classification report: figures, text, PNG, files, TensorBoard; the callback's labelled confusion matrix."""

import json

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.evaluation import ClassificationReport, confusion
from tests.test_callbacks_and_manifest import _event_tags


def test_scores_from_a_known_confusion_matrix():
    matrix = np.array([[5, 1, 0], [2, 2, 0], [0, 0, 0]])  # class "c" never occurs nor is predicted
    r = ClassificationReport(["a", "b", "c"], matrix, {"audio": 0.25}, model_name="m")
    assert r.num_examples == 10 and r.accuracy == pytest.approx(0.7)
    a, b, c = r.classes
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(5 / 7), pytest.approx(5 / 6), 6)
    assert b["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert c == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # no division by zero
    assert r.weighted["recall"] == pytest.approx(0.7)
    text = str(r)
    assert "accuracy 70.00%" in text and "true \\ predicted" in text and "audio removed" in text and "25.00%" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("true \\ predicted"))
    assert lines[header].split()[-3:] == ["a", "b", "c"]
    assert lines[header + 2].split() == ["b", "2", "2", "0"]  # the "b" row of the matrix, counts


def test_report_on_a_trained_model(trained_trimodal, tiny_synthetic, tmp_path):
    model, _ = trained_trimodal
    _, (x_test, y_test) = tiny_synthetic
    r = mmkeras.evaluation.report(model, x_test, y_test)
    predicted = np.argmax(model.predict(x_test, verbose=0), axis=-1)
    assert r.accuracy == pytest.approx(np.mean(predicted == y_test))
    np.testing.assert_array_equal(r.confusion_matrix, confusion.confusion_matrix(y_test, predicted, 4))
    assert r.class_names == ["a", "b", "c", "d"] and set(r.accuracy_without) == {"image", "audio", "text"}
    names = np.array(["abcd"[i] for i in y_test])
    assert mmkeras.evaluation.report(model, x_test, names).accuracy == r.accuracy  # class-name labels
    files = r.save(tmp_path / "rep")
    assert json.loads(open(files["json"]).read())["confusion_matrix"] == r.confusion_matrix.tolist()
    assert open(files["txt"]).read().startswith("Classification report: model")
    png = tf.io.decode_png(open(files["png"], "rb").read()).numpy()
    assert png.shape[0] > 300 and png.shape[1] > 300  # a labelled figure, not the 16-pixel-per-cell heat map
    r.log_to_tensorboard(tmp_path / "tb")
    assert {"report/scores/accuracy", "report/scores", "report/scores/confusion_matrix"} <= _event_tags(
        tmp_path / "tb")
    with pytest.raises(ValueError, match="report needs labels"):
        mmkeras.evaluation.report(model, x_test)


def test_without_matplotlib_the_text_still_works(monkeypatch, tmp_path):
    monkeypatch.setattr(confusion, "_pyplot", lambda: None)
    r = ClassificationReport(["a", "b"], np.array([[1, 0], [0, 1]]))
    with pytest.raises(ImportError, match=r"pip install 'mmkeras\[plot\]'"):
        r.confusion_png()
    assert set(r.save(tmp_path)) == {"txt", "json"}
    assert confusion.confusion_image(r.confusion_matrix, r.class_names).shape == (1, 32, 32, 3)  # heat map


def _summaries(directory, tag):
    out = []
    for path in tf.io.gfile.glob(str(directory / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    out.append(value)
    return out


def test_tensorboard_confusion_matrix_is_labelled(tiny_synthetic, tmp_path):
    (x, y), _ = tiny_synthetic
    xi = {"image": x["image"][:32], "audio": x["audio"][:32]}
    model = mmkeras.build_model("image_audio_small", num_classes=4, class_names=["cat", "dog", "owl", "fox"])
    model.fit(xi, y[:32], validation_split=0.25, epochs=1, verbose=0,
              callbacks=[mmkeras.callbacks.TensorBoard(str(tmp_path))])
    (image,) = _summaries(tmp_path / "images", "confusion_matrix/scores")
    width, height = (int(b) for b in tf.make_ndarray(image.tensor)[:2])
    assert width > 300 and height > 300  # the report's figure (axis titles, names, counts)
    (text,) = _summaries(tmp_path / "images", "confusion_matrix_table/scores")
    table = tf.make_ndarray(text.tensor).item().decode()
    assert "true \\ predicted" in table and all(name in table for name in ("cat", "dog", "owl", "fox"))
