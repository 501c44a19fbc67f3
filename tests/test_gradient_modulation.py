"""On-the-fly gradient modulation (``gradient_modulation``, OGM): the modality ahead learns slower through fusion.

What a user relies on: each training step sets ``k_m = 1 - tanh(alpha * relu(rho_m - 1))``
from the unimodal heads' true-class probabilities (examples with the modality only);
the fused loss's gradient into a tower is scaled by its ``k`` while the forward values,
the unimodal heads' gradients, predictions, ``.keras`` files and the exported
signature stay as without it; bad options are named. Under JAX the coefficients
update too (tests/test_jax_backend.py, the raw-input JAX case); the exported SavedModel of
such a model serves the fused head (tests/test_auxiliary_heads.py, its export case).
"""

import keras
import numpy as np
import pytest

import mmkeras
from tests._av_helpers import tiny_av_preset


def _model(alpha=0.5, **extra):
    preset = tiny_av_preset("fusion/late", auxiliary_heads={"loss_weight": 1.0},
                            gradient_modulation={"alpha": alpha}, **extra)
    return mmkeras.build_model(preset, num_classes=3, seed=0)


def _image_carries_the_label(n=24, seed=0):
    """Images whose brightness is their class (what a pooled CNN sees), audio that is noise (drawn from ``seed``)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    image = np.broadcast_to(y[:, None, None, None] / 2.0, (n, 28, 28, 1)).astype("float32")
    audio = rng.standard_normal((n, 61, 40), dtype="float32")
    return {"image": image, "audio": audio, "present": np.ones((n, 2), "float32")}, y


@pytest.mark.parametrize("options, message", [
    ({"alpha": 0}, "gradient_modulation.alpha must be a number > 0"),
    ({"alpha": True}, "gradient_modulation.alpha must be a number > 0"),
    ({"noise": True}, r"gradient_modulation: unknown key\(s\) \['noise'\]"),
    ("strong", "gradient_modulation must be a dict"),
])
def test_bad_options_are_named(options, message):
    preset = tiny_av_preset("fusion/late", auxiliary_heads=True, gradient_modulation=options)
    with pytest.raises(ValueError, match=message):
        mmkeras.build_model(preset, num_classes=3)


def test_it_needs_unimodal_heads_and_a_classification_head():
    with pytest.raises(ValueError, match="gradient_modulation needs auxiliary_heads"):
        mmkeras.build_model(tiny_av_preset("fusion/late", gradient_modulation=True), num_classes=3)
    regression = [{"name": "value", "type": "regression", "units": 1}]
    with pytest.raises(ValueError, match="gradient_modulation needs a 'classification' head"):
        mmkeras.build_model(tiny_av_preset("fusion/late", auxiliary_heads=True, gradient_modulation=True,
                                           heads=regression))
    model = mmkeras.build_model(tiny_av_preset("fusion/late", auxiliary_heads=True, gradient_modulation=True),
                                num_classes=3)
    assert model.mm_config["gradient_modulation"] == {"alpha": 0.5}
    assert mmkeras.build_model(tiny_av_preset("fusion/late", auxiliary_heads=True), num_classes=3) \
        .gradient_modulation is None


def test_coefficients_follow_the_unimodal_scores_of_present_examples():
    model = _model(alpha=0.5)
    y = np.array([0, 1, 2, 0])
    present = np.ones((4, 2), "float32")
    present[3, 1] = 0.0  # the last example has no audio: its (perfect) audio score must not count

    def probs(true_class_prob):
        out = np.full((4, 3), 0.0, "float32")
        out[np.arange(4), y] = true_class_prob
        out[np.arange(4), (y + 1) % 3] = 1.0 - np.asarray(true_class_prob)
        return out

    y_pred = {"fused": probs([0.5] * 4),
              "auxiliary": {"image": {"scores": probs([0.9] * 4)}, "audio": {"scores": probs([0.3, 0.3, 0.3, 1.0])}}}
    model.compute_loss(x={"present": present}, y=y, y_pred=y_pred)
    rho = 0.9 / 0.3
    np.testing.assert_allclose(np.asarray(model.gradient_modulation.coefficients),
                               [1.0 - np.tanh(0.5 * (rho - 1.0)), 1.0], rtol=1e-5)


def test_the_modality_that_carries_the_label_is_slowed_and_the_other_is_not():
    keras.utils.set_random_seed(0)  # the same start whichever tests ran before
    model = _model(alpha=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    for step in range(8):  # fresh audio noise each step: the audio head cannot memorise it
        model.train_on_batch(*_image_carries_the_label(seed=step))
    image_k, audio_k = np.asarray(model.gradient_modulation.coefficients)
    assert image_k < 0.9 and audio_k == 1.0, (image_k, audio_k)


def test_the_fused_gradient_into_a_tower_is_scaled_by_its_coefficient():
    import tensorflow as tf

    model = _model()
    x, _ = _image_carries_the_label(n=6)
    towers = {m: model.get_layer(f"{m}_tower").trainable_variables for m in ("image", "audio")}

    def fused_gradients():
        with tf.GradientTape() as tape:
            fused = model(x, training=True)["fused"]
            loss = tf.reduce_sum(fused * tf.range(1.0, 4.0))  # the fused path alone, no unimodal loss
        grads = tape.gradient(loss, towers)
        return fused.numpy(), {m: [g.numpy() for g in grads[m]] for m in grads}

    plain_out, plain = fused_gradients()
    model.gradient_modulation.coefficients.assign([0.25, 1.0])
    out, scaled = fused_gradients()
    np.testing.assert_allclose(out, plain_out, rtol=1e-6)  # forward values unchanged
    for a, b in zip(scaled["image"], plain["image"]):
        np.testing.assert_allclose(a, 0.25 * b, rtol=1e-4, atol=1e-7)
    for a, b in zip(scaled["audio"], plain["audio"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def test_keras_file_keeps_predictions_and_coefficients(tmp_path):
    """(The exported SavedModel of such a model: tests/test_auxiliary_heads.py, whose export case carries it.)"""
    model = _model(modality_dropout=0.3)
    x, y = _image_carries_the_label(n=8)
    model.train_on_batch(x, y)
    coefficients = np.asarray(model.gradient_modulation.coefficients)
    assert coefficients.min() < 1.0  # the step moved them (one modality scored above the other)
    expected = np.asarray(model(x))  # inference: the fused head alone, [B, 3]
    assert expected.shape == (8, 3)

    path = tmp_path / "ogm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(loaded.gradient_modulation.coefficients), coefficients)
    assert loaded.mm_config["gradient_modulation"] == {"alpha": 0.5}
