"""Long-audio windowing: preprocessing shapes, pooling over valid windows, export, config."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.codecs import encode_wav
from mmkeras.preprocessing import Preprocessor
from mmkeras.preprocessing.audio import audio_window_features

RATE = 8000
AUDIO = {"sample_rate": RATE, "duration_s": 1.0, "frame_length_ms": 32.0, "frame_step_ms": 16.0, "n_mels": 40}


def _wav(seconds, seed=0):
    rng = np.random.default_rng(seed)
    return encode_wav(0.3 * rng.standard_normal(int(seconds * RATE)), RATE)


def _model(max_windows=4):
    return mmkeras.build_model(
        "audio_small", num_classes=3,
        modalities={"audio": {"preprocessing": {"max_windows": max_windows}}})


def test_window_features_shapes_and_mask():
    x, present, valid = audio_window_features(tf.constant(_wav(2.5)), max_windows=4, **AUDIO)
    assert x.shape == (4, 61, 40)
    assert float(present) == 1.0
    assert valid.numpy().tolist() == [1.0, 1.0, 1.0, 0.0]
    # A clip longer than max_windows windows is cut, every window valid.
    _, _, valid = audio_window_features(tf.constant(_wav(9.0)), max_windows=4, **AUDIO)
    assert valid.numpy().tolist() == [1.0] * 4
    # Absent audio: zeros, present 0, no valid window.
    x, present, valid = audio_window_features(tf.constant(b""), max_windows=4, **AUDIO)
    assert float(present) == 0.0 and not valid.numpy().any() and not x.numpy().any()


def test_window_matches_single_clip_features():
    """Window i holds the same features as the trimmed clip starting at i seconds."""
    wav = _wav(2.0)
    samples = np.frombuffer(wav[44:], "<i2") / 2.0 ** 15
    pre = Preprocessor({"audio": {**AUDIO, "max_windows": 2}})
    single = Preprocessor({"audio": AUDIO})
    windows = pre.preprocess_example({"audio": wav})
    second = single.preprocess_example({"audio": encode_wav(samples[RATE:], RATE)})
    np.testing.assert_allclose(windows["audio"][1].numpy(), second["audio"].numpy(), atol=1e-4)
    assert pre.feature_shapes()["audio"] == ((2, 61, 40), "float32")
    assert pre.feature_shapes()["audio_windows"] == ((2,), "float32")


def test_three_window_clip_pools_its_three_windows():
    model = _model(max_windows=4)
    feats = model.preprocess({"audio": [_wav(3.0)]})
    assert feats["audio_windows"].tolist() == [[1.0, 1.0, 1.0, 0.0]]
    tower, pooling = model.get_layer("audio_tower"), model.get_layer("audio_window_pooling")
    per_window = tower(feats["audio"][0])["pooled"].numpy()
    out = pooling(per_window, feats["audio_windows"])
    np.testing.assert_allclose(out["pooled"].numpy()[0], per_window[:3].mean(axis=0), rtol=1e-5, atol=1e-6)
    assert out["mask"].numpy().tolist() == [[True, True, True, False]]
    # End to end, the padded 4th window does not change the scores.
    changed = {**feats, "audio": feats["audio"].copy()}
    changed["audio"][0, 3] += 5.0
    np.testing.assert_allclose(model.predict(changed, verbose=0), model.predict(feats, verbose=0), atol=1e-6)


def test_fit_predict_raw_long_clips():
    model = _model(max_windows=3)
    x = {"audio": [_wav(0.5, 1), _wav(2.2, 2), _wav(7.0, 3), b""]}
    model.fit({"audio": x["audio"][:3]}, np.array([0, 1, 2]), epochs=1, verbose=0)
    scores = model.predict({"audio": x["audio"][:3]}, verbose=0)
    assert scores.shape == (3, 3) and np.isfinite(scores).all()


def test_config_round_trip(tmp_path):
    model = _model(max_windows=3)
    assert model.mm_config["modalities"]["audio"]["preprocessing"]["max_windows"] == 3
    # Through JSON, as a .keras file stores it (a live config holds Keras-tracked dicts).
    clone = mmkeras.MultimodalModel.from_config(json.loads(json.dumps(model.get_config())))
    assert clone.preprocessor.feature_shapes() == model.preprocessor.feature_shapes()
    path = tmp_path / "windows.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    raw = {"audio": [_wav(2.2, 4)]}
    np.testing.assert_allclose(restored.predict(raw, verbose=0), model.predict(raw, verbose=0), atol=1e-5)


@pytest.mark.slow
def test_export_serves_long_clips(tmp_path):
    model = _model(max_windows=3)
    raw = [_wav(2.2, 5), _wav(0.7, 6)]
    expected = model.predict({"audio": raw}, verbose=0)
    path = mmkeras.export_saved_model(model, str(tmp_path / "m"), warmup=False)
    served = tf.saved_model.load(path).signatures["serving_default"]
    out = served(audio=tf.constant(raw))
    np.testing.assert_allclose(out["scores"].numpy(), expected, atol=1e-5)
