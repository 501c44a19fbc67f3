"""Unimodal supervision (``auxiliary_heads``): each modality's tower also trains its own copy of the head.

What a user relies on: the training loss adds each unimodal head's loss over the
examples where its modality is present (and nothing else); the heads get gradients
from their own modality only; predictions, ``.keras`` files, the exported SavedModel
and its signature are those of the fused heads alone; bad options are named.
"""

import keras
import numpy as np
import pytest

import mmkeras
from mmkeras.models.task import Task
from tests._av_helpers import av_subset, tiny_av_preset


def _model(weight=0.5, **extra):
    preset = tiny_av_preset("fusion/late", auxiliary_heads={"loss_weight": weight}, **extra)
    return mmkeras.build_model(preset, num_classes=3, seed=0)


def _features(n=8, seed=0):
    rng = np.random.default_rng(seed)
    present = np.ones((n, 2), "float32")
    present[: n // 2, 1] = 0.0  # half the examples without audio
    return {"image": rng.random((n, 28, 28, 1), dtype="float32"),
            "audio": rng.standard_normal((n, 61, 40), dtype="float32"), "present": present}


def _cross_entropy(y, probs):
    return -np.log(np.asarray(probs)[np.arange(len(y)), y])


def test_training_loss_adds_each_unimodal_loss_over_examples_with_that_modality():
    model = _model(weight=0.5)
    x, y = _features(), np.arange(8) % 3
    y_pred = model(x, training=True)
    assert set(y_pred) == {"fused", "auxiliary"} and set(y_pred["auxiliary"]) == {"image", "audio"}
    fused_loss = float(Task.compute_loss(model, x=x, y=y, y_pred=y_pred["fused"]))
    total = float(model.compute_loss(x=x, y=y, y_pred=y_pred))
    unimodal = sum(np.mean(x["present"][:, i] * _cross_entropy(y, y_pred["auxiliary"][m]["scores"]))
                   for i, m in enumerate(("image", "audio")))
    np.testing.assert_allclose(total, fused_loss + 0.5 * unimodal, rtol=1e-5)
    # Evaluation and the reported metrics see the fused head alone.
    assert tuple(model(x, training=False).shape) == (8, 3)


def test_unimodal_heads_learn_from_their_own_modality_only():
    model = _model(weight=1.0)
    model.compile(optimizer="sgd")  # no weight decay: a weight moves only where a gradient reaches it
    x = _features()
    x["present"][:, 1] = 0.0  # no example has audio
    image_head, audio_head = model.auxiliary_head("image"), model.auxiliary_head("audio")
    before = [np.asarray(w).copy() for w in image_head.weights + audio_head.weights]
    logs = model.train_on_batch(x, np.arange(8) % 3, return_dict=True)
    assert np.isfinite(logs["loss"]) and set(logs) == {"loss", "accuracy"}
    after = [np.asarray(w) for w in image_head.weights + audio_head.weights]
    n = len(image_head.weights)
    assert not all(np.allclose(a, b) for a, b in zip(before[:n], after[:n])), "the image head did not train"
    assert all(np.allclose(a, b) for a, b in zip(before[n:], after[n:])), "the absent audio trained its head"


def test_heads_named_fused_and_auxiliary_are_not_taken_for_the_unimodal_outputs():
    heads = [{"name": "fused", "units": 3}, {"name": "auxiliary", "units": 2}]
    model = mmkeras.build_model(tiny_av_preset("fusion/late", auxiliary_heads={"loss_weight": 1.0}), heads=heads,
                                seed=0)
    x, y = _features(), {"fused": np.arange(8) % 3, "auxiliary": np.arange(8) % 2}
    y_pred = model(x, training=False)
    assert set(y_pred) == {"fused", "auxiliary"}
    expected = float(Task.compute_loss(model, x=x, y=y, y_pred=y_pred))
    # Out of training the outputs are the two heads', and the loss theirs alone.
    np.testing.assert_allclose(float(model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)), expected, rtol=1e-6)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isfinite(logs["loss"]) and {"fused_accuracy", "auxiliary_accuracy"} <= set(logs)
    trained = model(x, training=True)
    assert set(trained["auxiliary"]["audio"]) == {"fused", "auxiliary"}  # each head's unimodal copy
    assert np.isfinite(model.train_on_batch(x, y, return_dict=True)["loss"])


@pytest.mark.parametrize("options, message", [
    ({"loss_weight": -1}, "loss_weight must be a number > 0"),
    ({"loss_weight": float("nan")}, "loss_weight must be a number > 0"),
    ({"weight": 1.0}, r"auxiliary_heads: unknown key\(s\) \['weight'\]"),
    ("yes", "auxiliary_heads must be a dict"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        mmkeras.build_model(tiny_av_preset("fusion/late", auxiliary_heads=options), num_classes=3)


def test_off_by_default_and_true_means_the_defaults():
    assert mmkeras.build_model(tiny_av_preset("fusion/late"), num_classes=3).auxiliary_heads == []
    model = mmkeras.build_model(tiny_av_preset("fusion/late", auxiliary_heads=True), num_classes=3)
    assert model.mm_config["auxiliary_heads"] == {"loss_weight": 1.0}
    assert sorted(layer.name for layer in model.auxiliary_heads) == ["audio_scores_auxiliary",
                                                                      "image_scores_auxiliary"]
    assert model.auxiliary_head("audio", "scores").name == "audio_scores_auxiliary"
    with pytest.raises(ValueError, match="no unimodal head 'text_scores_auxiliary'"):
        model.auxiliary_head("text")


def test_raw_fit_then_keras_file_and_saved_model_serve_the_fused_head(tmp_path):
    import tensorflow as tf

    x, y = av_subset(24)
    # Gradient modulation (tests/test_gradient_modulation.py) adds to the training graph only: checked here too.
    model = _model(weight=1.0, modality_dropout=0.3, gradient_modulation={"alpha": 0.5})
    model.fit(x, y % 3, epochs=1, batch_size=8, verbose=0)
    expected = model.predict(x, verbose=0)
    assert expected.shape == (24, 3)

    path = tmp_path / "aux.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    for a, b in zip(model.auxiliary_heads, loaded.auxiliary_heads):  # trained unimodal heads kept
        assert a.name == b.name
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(np.asarray(wa), np.asarray(wb))

    served = tf.saved_model.load(mmkeras.export_saved_model(model, tmp_path / "served", warmup=False))
    signature = served.signatures["serving_default"]
    assert set(signature.structured_outputs) == {"scores", "classes", "present"}  # as without unimodal heads
    assert model.gradient_modulation is not None and np.asarray(model.gradient_modulation.coefficients).min() < 1
    out = signature(image=tf.constant(x["image"][:4]), audio=tf.constant(x["audio"][:4]))
    np.testing.assert_allclose(out["scores"].numpy(), expected[:4], rtol=1e-4, atol=1e-5)
