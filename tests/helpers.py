"""Shared test helper every tower, fusion block and head runs through.

``run_part_test`` checks, for one part: get_config/from_config round trip with
identical outputs, ``.keras`` save/load with identical outputs, building and
running under mixed_float16 and mixed_bfloat16 (finite, float32 where promised),
and one training step under mixed_float16 with loss scaling that changes
the weights and gives a finite loss.
"""

import keras
import numpy as np

from mmkeras.training.mixed_precision import dtype_policy_scope


def part_model(layer, inputs, call):
    """Wraps ``call(layer, keras_inputs)`` in a functional model over ``inputs``' shapes."""
    keras_inputs = {k: keras.Input(v.shape[1:], dtype=str(v.dtype), name=k) for k, v in inputs.items()}
    return keras.Model(keras_inputs, call(layer, keras_inputs))


def _predict(model, inputs):
    return keras.ops.convert_to_numpy(model(inputs, training=False))


def run_part_test(make, inputs, call, tmp_path, expect_float32=False):
    """Runs the shared checks on a part.

    Args:
        make: callable ``make(dtype=None) -> layer`` building a fresh part.
        inputs: dict of numpy arrays (with a batch axis) fed to the wrapper model.
        call: callable ``call(layer, keras_inputs) -> one output tensor``.
        tmp_path: pathlib.Path for the .keras file.
        expect_float32: bool. The output must be float32 under mixed precision (heads).
    """
    keras.utils.set_random_seed(0)
    layer = make()
    model = part_model(layer, inputs, call)
    expected = _predict(model, inputs)
    assert np.all(np.isfinite(expected))

    # get_config/from_config: same config, same outputs with the same weights.
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    clone_model = part_model(clone, inputs, call)
    clone_model.set_weights(model.get_weights())
    np.testing.assert_allclose(_predict(clone_model, inputs), expected, rtol=1e-5, atol=1e-5)

    # .keras round trip.
    path = tmp_path / f"{layer.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_predict(loaded, inputs), expected, rtol=1e-5, atol=1e-5)

    # Mixed precision builds and runs.
    for policy in ("mixed_float16", "mixed_bfloat16"):
        with dtype_policy_scope(policy):
            mp_model = part_model(make(dtype=policy), inputs, call)
        out = mp_model(inputs, training=False)
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32")))), policy
        if expect_float32:
            assert out.dtype == "float32", f"{policy}: output dtype {out.dtype}"

    # One training step changes the weights: under mixed_float16, so loss scaling and
    # float16 gradients are exercised (the float32 path is covered by the presets test).
    for policy in ("mixed_float16",):
        with dtype_policy_scope(policy):
            train_model = part_model(make(dtype=policy), inputs, call)
            train_model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        before = [w.copy() for w in train_model.get_weights()]
        target = np.ones_like(expected, dtype="float32")
        loss = train_model.train_on_batch(inputs, target)
        assert np.isfinite(loss), policy
        after = train_model.get_weights()
        assert any(not np.allclose(a, b) for a, b in zip(before, after)), f"{policy}: no weight changed"
    return expected
