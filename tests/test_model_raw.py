"""Raw-input fit/evaluate/predict, .keras round trips, bad-input errors, export basics."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.codecs import encode_png


def _head(x, n=4):
    return {k: v[:n] for k, v in x.items()}


def test_fit_evaluate_predict_on_raw_inputs(trained_trimodal, tiny_synthetic):
    model, history = trained_trimodal
    _, (x_test, y_test) = tiny_synthetic
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.history)
    assert not model.preprocessor.needs_adapt  # vocabulary adapted on the training split
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0
    probs = model.predict(_head(x_test), verbose=0)
    assert probs.shape == (4, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_keras_round_trip_gives_identical_raw_predictions(trained_trimodal, tiny_synthetic, tmp_path):
    model, _ = trained_trimodal
    _, (x_test, _) = tiny_synthetic
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects needed after `import mmkeras`
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0), rtol=0, atol=1e-6)
    assert loaded.preprocessor.text_vectorizer.get_vocabulary() == model.preprocessor.text_vectorizer.get_vocabulary()


def test_empty_value_means_absent(trained_trimodal, tiny_synthetic):
    model, _ = trained_trimodal
    _, (x_test, _) = tiny_synthetic
    x = _head(x_test, 3)
    x["audio"] = np.array([b"", x["audio"][1], b""], dtype=object)
    x["text"] = np.array(["", "", x["text"][2]], dtype=object)
    features = model.preprocess(x)
    np.testing.assert_array_equal(features["present"], [[1, 0, 0], [1, 1, 0], [1, 0, 1]])
    probs = model.predict(x, verbose=0)
    assert np.all(np.isfinite(probs))


def test_preset_with_fewer_modalities_takes_only_those_keys(tiny_synthetic):
    (x, y), _ = tiny_synthetic
    model = mmkeras.build_model("image_audio_small", num_classes=4)
    model.fit({"image": x["image"][:16], "audio": x["audio"][:16]}, y[:16], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"unexpected input key\(s\) \['text'\]"):
        model.predict(_head(x), verbose=0)


BAD_INPUTS = [
    (lambda x: {"image": x["image"], "audio": x["audio"]}, r"input 'text' is missing"),
    (lambda x: {**x, "video": x["text"]}, r"unexpected input key\(s\) \['video'\]"),
    (lambda x: {**x, "image": np.zeros((4, 8, 8, 3), "float32")}, r"input 'image' must be 1-D"),
    (lambda x: {**x, "text": [1, 2, 3, 4]}, r"input 'text' must hold UTF-8 strings"),
    (lambda x: {**x, "text": "one string"}, r"input 'text' must be a list/array"),
    (lambda x: {**x, "audio": x["audio"][:3]}, r"different numbers of examples"),
    (lambda x: {k: v[:0] for k, v in x.items()}, r"inputs are empty"),
]


@pytest.mark.parametrize("make_bad,message", BAD_INPUTS)
def test_bad_inputs_raise_named_value_errors(trained_trimodal, tiny_synthetic, make_bad, message):
    model, _ = trained_trimodal
    (x, y), _ = tiny_synthetic
    bad = make_bad(_head(x))
    with pytest.raises(ValueError, match=message):
        model.fit(bad, y[:4], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.predict(bad, verbose=0)


def test_label_errors(trained_trimodal, tiny_synthetic):
    model, _ = trained_trimodal
    (x, _), _ = tiny_synthetic
    with pytest.raises(ValueError, match=r"must be in \[0, 4\) \(num_classes=4\), got values in \[0, 9\]"):
        model.fit(_head(x), np.array([0, 1, 2, 9]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="have 3 rows but the inputs have 4"):
        model.fit(_head(x), np.array([0, 1, 2]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="must be integer class indices"):
        model.fit(_head(x), np.array([0.5, 1, 2, 3]), epochs=1, verbose=0)


def test_undecodable_bytes_name_modality_and_index(trained_trimodal, tiny_synthetic):
    model, _ = trained_trimodal
    (x, y), _ = tiny_synthetic
    bad = _head(x)
    bad["image"] = bad["image"].copy()
    bad["image"][2] = b"this is not an image"
    with pytest.raises(ValueError, match=r"^mmkeras: input 'image', example 2: not a PNG"):
        model.predict(bad, verbose=0)
    bad = _head(x)
    bad["audio"] = bad["audio"].copy()
    bad["audio"][3] = b"RIFF....junk"
    with pytest.raises(ValueError, match=r"input 'audio', example 3"):
        model.fit(bad, y[:4], epochs=1, verbose=0)


def test_multitask_heads_with_loss_weights(tiny_synthetic):
    (x, y), _ = tiny_synthetic
    heads = [
        {"name": "digit", "type": "classification", "units": 4, "loss_weight": 1.0},
        {"name": "parity", "type": "classification", "units": 2, "loss_weight": 0.5},
        {"name": "size", "type": "regression", "units": 1, "loss_weight": 0.1},
    ]
    model = mmkeras.build_model("image_audio_small", heads=heads)
    xi = {"image": x["image"][:32], "audio": x["audio"][:32]}
    labels = {"digit": y[:32], "parity": y[:32] % 2, "size": y[:32].astype("float32") / 4}
    history = model.fit(xi, labels, epochs=1, verbose=0)
    assert "digit_accuracy" in history.history and "size_mae" in history.history
    out = model.predict(_head(xi), verbose=0)
    assert set(out) == {"digit", "parity", "size"} and out["size"].dtype == np.float32
    with pytest.raises(ValueError, match="several heads"):
        model.fit(xi, y[:32], epochs=1, verbose=0)


def test_mixed_precision_build_and_loss_scaling(tiny_synthetic):
    (x, y), _ = tiny_synthetic
    model = mmkeras.build_model("image_small", num_classes=4, mixed_precision="mixed_float16")
    assert model.dtype_policy.name == "mixed_float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model.fit({"image": x["image"][:32]}, y[:32], epochs=1, verbose=0)
    assert model.predict({"image": x["image"][:2]}, verbose=0).dtype == np.float32
    mmkeras.set_mixed_precision("mixed_bfloat16")
    try:
        assert mmkeras.build_model("image_small", num_classes=4).dtype_policy.name == "mixed_bfloat16"
    finally:
        mmkeras.set_mixed_precision(None)


@pytest.fixture(scope="module")
def first_export(trained_trimodal, tmp_path_factory):
    """``(base, path)``: the trained model's first export, version 1 (about 15 s of CPU, so made once).

    Tests only read version 1; the layout test adds version 2 beside it."""
    base = tmp_path_factory.mktemp("exports") / "saved_models" / "demo"
    return base, mmkeras.export_saved_model(trained_trimodal[0], base)


def test_export_layout_versions_and_signature(trained_trimodal, first_export):
    model, _ = trained_trimodal
    base, first = first_export
    second = mmkeras.export_saved_model(model, base)
    assert first.endswith(os.sep + "1") and second.endswith(os.sep + "2")
    assert sorted(os.listdir(base)) == ["1", "2"]  # no temporary directory left behind
    with pytest.raises(FileExistsError):
        mmkeras.export_saved_model(model, base, version=1)
    loaded = tf.saved_model.load(first)
    fn = loaded.signatures["serving_default"]
    inputs = fn.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        m: (tf.string, [None]) for m in ("image", "audio", "text")}
    outputs = fn.structured_outputs
    assert outputs["scores"].dtype == tf.float32 and outputs["classes"].dtype == tf.string


def test_export_is_float32_under_mixed_bfloat16(tmp_path):
    model = mmkeras.build_model("image_small", num_classes=3, mixed_precision="mixed_bfloat16")
    path = mmkeras.export_saved_model(model, tmp_path / "bf16")
    out = tf.saved_model.load(path).signatures["serving_default"](
        image=tf.constant([encode_png(np.full((8, 8, 3), 200, np.uint8))]))
    assert out["scores"].dtype == tf.float32 and np.all(np.isfinite(out["scores"].numpy()))


FRESH_PROCESS = r"""
import json, sys, base64
import tensorflow as tf
assert "mmkeras" not in sys.modules
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
req = json.load(open(sys.argv[2]))
out = fn(**{k: tf.constant([base64.b64decode(v) for v in vals]) for k, vals in req.items()})
assert "mmkeras" not in sys.modules
print("OUT " + json.dumps({"scores": out["scores"].numpy().tolist(),
                           "classes": [c.decode() for c in out["classes"].numpy()]}))
"""


def test_export_runs_in_fresh_process_without_mmkeras(trained_trimodal, first_export, tiny_synthetic, tmp_path):
    import base64

    model, _ = trained_trimodal
    _, (x_test, _) = tiny_synthetic
    x = _head(x_test, 3)
    path = first_export[1]
    request = {m: [base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for v in x[m]] for m in x}
    (tmp_path / "req.json").write_text(json.dumps(request))
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, path, str(tmp_path / "req.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("OUT "))[4:])
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(out["scores"], expected, atol=1e-5)
    assert out["classes"] == [["a", "b", "c", "d"][i] for i in expected.argmax(axis=1)]


def test_cached_dataset_equals_streamed_and_reshuffles(trained_trimodal, tiny_synthetic):
    """fit(raw, cache=True) preprocesses once and slices in-memory features: every epoch must hold
    exactly the streamed pipeline's (features, label) pairs, in a new order."""
    from mmkeras.data import raw as raw_checks

    model, _ = trained_trimodal
    (x, y), _ = tiny_synthetic
    arrays = raw_checks.validate_raw(x, model.modalities)
    labels = raw_checks.validate_labels(y, model.heads, len(y))

    def epoch(ds):
        rows = []
        for feats, lab in ds:
            for i in range(int(lab.shape[0])):
                rows.append((round(float(np.sum(feats["image"][i])), 3), round(float(np.sum(feats["audio"][i])), 2),
                             tuple(feats["text"][i].numpy()), tuple(feats["present"][i].numpy()), int(lab[i])))
        return rows

    streamed = epoch(model.make_dataset(arrays, labels, batch_size=16, shuffle=False, cache=False))
    cached = model.make_dataset(arrays, labels, batch_size=16, shuffle=True, seed=3, cache=True)
    first, second = epoch(cached), epoch(cached)
    assert len(streamed) == len(y) and sorted(first) == sorted(streamed) == sorted(second)
    assert first != second  # reshuffled every epoch
    assert [r[-1] for r in streamed] == list(y)
