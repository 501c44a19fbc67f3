"""Shared test helpers every tower, fusion block, head and layer runs through.

``run_keras_layer_test`` applies Keras's own layer contract (``run_layer_test``)
plus the build/shape/dtype checks it leaves out, to any public layer.

``run_part_test`` checks, for one part: get_config/from_config round trip with
identical outputs, ``.keras`` save/load with identical outputs, building and
running under mixed_float16 and mixed_bfloat16 (finite, float32 where promised),
and training under mixed_float16 with loss scaling that changes the weights
within a few steps (skipped overflow steps allowed) and gives finite losses.
"""

import keras
import numpy as np
from keras.src.testing import TestCase  # Keras's own layer test machinery (no public alias)

from mmkeras.training.mixed_precision import dtype_policy_scope

# Training steps run_part_test allows for the float16 loss scale to settle before a weight must change.
LOSS_SCALE_SETTLING_STEPS = 6


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
        # Dynamic loss scaling starts at 2**15 and skips steps whose float16 gradients overflow,
        # halving the scale each time (a small BERT's embedding gradients need two halvings).
        # Built before the first step, as mmkeras's Task does (else the step is traced twice).
        train_model.optimizer.build(train_model.trainable_variables)
        for _ in range(LOSS_SCALE_SETTLING_STEPS):
            loss = train_model.train_on_batch(inputs, target)
            assert np.isfinite(loss), policy
            after = train_model.get_weights()
            if any(not np.allclose(a, b) for a, b in zip(before, after)):
                break
        assert any(not np.allclose(a, b) for a, b in zip(before, after)), f"{policy}: no weight changed"
    return expected


class KerasLayerCase(TestCase):
    """Keras's own layer test machinery (``keras.src.testing.TestCase``), used outside unittest."""

    def runTest(self):  # unittest needs one test method to instantiate the case
        pass


def _build_shapes(input_data):
    """``build()`` arguments: one shape, or ``{<arg>_shape: shapes}`` as Keras's auto-build passes them."""
    shape = lambda x: tuple(np.shape(x))  # noqa: E731
    if isinstance(input_data, dict):
        return {f"{k}_shape": keras.tree.map_structure(shape, v) for k, v in input_data.items()}
    return shape(input_data)


def _call(layer, input_data, **kwargs):
    if isinstance(input_data, dict):
        return layer(**input_data, **kwargs)
    return layer(input_data, **kwargs)


def run_keras_layer_test(layer_cls, init_kwargs, input_data, stateless=False):
    """Keras's ``run_layer_test`` on a public layer, plus the contract checks it leaves out.

    Keras checks the config and serialization round trips, that ``build()`` alone
    creates as many weights as a call, a symbolic and an eager call, one
    training step (single-input layers: Keras's harness passes a dict input
    positionally), and mixed_float16 output dtypes against ``compute_output_spec``.
    On top of that this helper checks that the weights ``build()`` creates are the
    ones a call creates (``set_weights`` works right after ``build`` and gives the
    same outputs), and that ``compute_output_spec`` matches the real output
    shapes and dtypes under the float32 policy too.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict. Constructor arguments.
        input_data: array, or dict of call keyword arguments (nested structures allowed).
        stateless: bool. The layer has no weights, so Keras also checks it is built right
            after construction (as its own stateless layers are) and not when ``build`` is overridden.
    """
    multi_input = isinstance(input_data, dict)
    KerasLayerCase().run_layer_test(layer_cls, init_kwargs, input_data=input_data,
                                     run_training_check=not multi_input, assert_built_after_instantiation=stateless)

    keras.utils.set_random_seed(0)
    called = layer_cls(**init_kwargs)
    expected = _call(called, input_data, training=False)
    built = layer_cls(**init_kwargs)
    shapes = _build_shapes(input_data)
    if not built.built:  # stateless layers are built at construction
        built.build(**shapes) if multi_input else built.build(shapes)
    assert [tuple(w.shape) for w in built.weights] == [tuple(w.shape) for w in called.weights]
    built.set_weights(called.get_weights())
    actual = _call(built, input_data, training=False)
    for a, b in zip(keras.tree.flatten(actual), keras.tree.flatten(expected)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-6)

    specs = keras.tree.map_structure(lambda x: keras.KerasTensor(np.shape(x), dtype=str(x.dtype)), input_data)
    spec = called.compute_output_spec(**specs) if multi_input else called.compute_output_spec(specs)
    for s, x in zip(keras.tree.flatten(spec), keras.tree.flatten(expected)):
        assert keras.backend.standardize_dtype(x.dtype) == s.dtype, (layer_cls.__name__, s.dtype, x.dtype)
        assert len(s.shape) == len(x.shape) and all(a in (None, b) for a, b in zip(s.shape, x.shape)), (
            layer_cls.__name__, s.shape, x.shape)


def check_freezing(tower, x, trainable):
    """A tower inside a model with a Dense head: with ``tower.trainable = False`` a training step
    changes none of its weights and BatchNorm uses its moving statistics even with ``training=True``;
    with ``True`` the step trains it and BatchNorm uses batch statistics (when it has BatchNorm).

    Args:
        tower: an unbuilt tower without dropout (so ``training=True`` adds no noise).
        x: numpy input batch, far from BatchNorm's initial moving statistics.
        trainable: bool. The flag to set before compiling.
    """
    inputs = keras.Input(x.shape[1:], dtype=str(x.dtype))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(tower(inputs)["pooled"]))
    tower.trainable = trainable
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    inference = np.asarray(model(x, training=False))
    training = np.asarray(model(x, training=True))
    moving = [w for w in tower.weights if "moving_mean" in w.path]
    before = [np.asarray(w).copy() for w in tower.weights]
    model.train_on_batch(x, np.ones((len(x), 2), "float32"))
    changed = [not np.array_equal(a, np.asarray(w)) for a, w in zip(before, tower.weights)]
    if trainable:
        assert sum(changed) > len(changed) // 2
        if moving:
            assert not np.allclose(training, inference, atol=1e-3)  # batch statistics in training
    else:
        np.testing.assert_allclose(training, inference, atol=1e-6)  # moving statistics even with training=True
        assert not any(changed) and not tower.trainable_weights
        assert model.get_layer("head").trainable_weights
    return moving


def uses_pretrained_weights(preset):
    """Whether a preset dict has a tower loading pretrained weights (a keras-hub ``preset`` or ``weights``)."""
    return any({"preset", "weights"} & set(m["tower"]) for m in preset["modalities"].values())


def library_keys(registry):
    """The keys of a registry that mmkeras itself registers (test files register parts of their own,
    e.g. tests/test_new_modality.py's ``vector/mlp``, in the same process)."""
    return {k for k in registry if registry.get(k).__module__.startswith("mmkeras.")}


def classifier_presets(names):
    """The presets among ``names`` that train with a classification head and no pretrained weights, sorted."""
    import mmkeras

    return sorted(n for n in names if not {"contrastive", "vae"} & set(mmkeras.get_preset(n))
                  and not uses_pretrained_weights(mmkeras.get_preset(n)))


def trains_one_step_and_round_trips(name, tmp_path):
    """Preset ``name`` with 3 classes: one training step (finite loss), float32 ``[B, 3]`` scores, the same
    scores after a ``.keras`` save and load, and the same config and size through ``get_config``."""
    import copy

    import mmkeras
    from tests.conftest import random_features

    model = mmkeras.build_model(name, num_classes=3)
    batch = 1 if name == "reference_base" else 2
    x = random_features(model, batch=batch)
    y = np.arange(batch) % 3
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    expected = model.predict(x, verbose=0)
    assert expected.shape == (batch, 3) and expected.dtype == np.float32
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, mmkeras.MultimodalModel)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert loaded.mm_config == model.mm_config
    clone = type(model).from_config(copy.deepcopy(model.get_config()))
    assert clone.count_params() == model.count_params() and clone.mm_config == model.mm_config


def run_docstring_example(obj, namespace=None):
    """Runs the fenced ```python block(s) of ``obj``'s docstring ``Example:`` section; fails if none.

    The block runs in ``namespace`` (default: the globals of the module defining ``obj``), so an
    example may use the names its module does.
    """
    import inspect
    import re
    import sys
    import textwrap

    doc = inspect.getdoc(obj) or ""
    _, found, example = doc.partition("Example:")
    blocks = re.findall(r"```python\n(.*?)```", example, re.S)
    assert found and blocks, f"{obj.__qualname__} has no Example: block with ```python code"
    module = sys.modules[obj.__module__]
    for code in blocks:
        exec(compile(textwrap.dedent(code), f"<{obj.__qualname__} example>", "exec"),
             dict(namespace if namespace is not None else vars(module)))
