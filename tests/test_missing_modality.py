"""An empty value means "absent" in fit, predict and the exported SavedModel; modality dropout."""

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.evaluation.features import compute_features, remove_modality
from mmkeras.layers import ModalityDropout
from tests._av_helpers import av_subset, tiny_av_preset


@pytest.fixture(scope="module")
def trained():
    x, y = av_subset(32)
    model = mmkeras.build_model(tiny_av_preset(modality_dropout=0.5), num_classes=10, seed=0)
    x_missing = {"image": x["image"].copy(), "audio": x["audio"].copy()}
    x_missing["audio"][::3] = b""  # some examples arrive without audio ...
    x_missing["image"][1::3] = b""  # ... others without the image
    model.fit(x_missing, y, epochs=1, batch_size=16, verbose=0)
    return model, x, y


def test_empty_value_matches_removed_features(trained):
    model, x, _ = trained
    raw = {"image": x["image"][:4], "audio": np.array([b""] * 4, dtype=object)}
    features = compute_features(model, raw)
    expected = remove_modality(compute_features(model, {k: v[:4] for k, v in x.items()}), model.modalities, "audio")
    np.testing.assert_array_equal(features["present"], [[1.0, 0.0]] * 4)
    for key in features:
        np.testing.assert_allclose(features[key], expected[key], atol=1e-6)


@pytest.mark.parametrize("fusion", ["fusion/concat", "fusion/gated", "fusion/attention", "fusion/transformer"])
def test_absent_modality_content_is_ignored(fusion):
    """Whatever sits in an absent modality's features, the scores do not change."""
    model = mmkeras.build_model(tiny_av_preset(fusion), num_classes=10, compile=False)
    rng = np.random.default_rng(0)
    image = rng.random((3, 28, 28, 1)).astype("float32")
    present = np.array([[1.0, 0.0]] * 3, dtype="float32")
    a = model({"image": image, "audio": np.zeros((3, 61, 40), "float32"), "present": present})
    b = model({"image": image, "audio": rng.normal(size=(3, 61, 40)).astype("float32") * 5, "present": present})
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_predict_and_saved_model_accept_empty_modalities(trained, tmp_path):
    model, x, _ = trained
    raw = {"image": np.array([x["image"][0], b"", x["image"][2]], dtype=object),
           "audio": np.array([b"", x["audio"][1], x["audio"][2]], dtype=object)}
    local = model.predict(raw, verbose=0)
    assert local.shape == (3, 10) and np.all(np.isfinite(local))
    path = mmkeras.export_saved_model(model, tmp_path / "m", warmup=False)
    served = tf.saved_model.load(path).signatures["serving_default"]
    out = served(image=tf.constant(list(raw["image"])), audio=tf.constant(list(raw["audio"])))
    np.testing.assert_allclose(out["scores"].numpy(), local, atol=1e-4)
    np.testing.assert_array_equal(out["present"].numpy(), [[1, 0], [0, 1], [1, 1]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty"):
        served(image=tf.constant([b""]), audio=tf.constant([b""]))


def test_modality_dropout_never_drops_all():
    layer = ModalityDropout(0.9, seed=1)
    present = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 1], [1, 1, 0]] * 500, dtype="float32")
    dropped = np.asarray(layer(present, training=True))
    assert np.all(dropped.sum(axis=1) >= 1)
    assert np.all(dropped <= present)  # never turns an absent modality on
    assert (dropped < present).mean() > 0  # and it does drop
    single = present[:, :1] * 0 + 1  # one modality only: never dropped
    np.testing.assert_array_equal(np.asarray(layer(single, training=True)), single)
    np.testing.assert_array_equal(np.asarray(layer(present, training=False)), present)
