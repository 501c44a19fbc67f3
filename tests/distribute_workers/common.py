"""Shared pieces of the tf.distribute tests: a tiny deterministic preset and data."""

import numpy as np

# No BatchNorm (per-replica statistics would differ from one device) and no dropout,
# so a distributed run must match a single-device run with the same global batch.
TINY_PRESET = {
    "name": "tiny_distribute",
    "modalities": {
        "image": {"preprocessing": {"height": 16, "width": 16, "channels": 3},
                  "tower": {"type": "image/vit", "patch_size": 8, "dim": 16, "num_layers": 1, "num_heads": 2}},
        "audio": {"preprocessing": {"sample_rate": 8000, "duration_s": 0.25, "frame_length_ms": 32.0,
                                    "frame_step_ms": 32.0, "n_mels": 16},
                  "tower": {"type": "audio/transformer", "dim": 16, "num_layers": 1, "num_heads": 2}},
    },
    "fusion": {"type": "fusion/concat", "dim": 16, "dropout": 0.0},
    "training": {"learning_rate": 3e-3, "weight_decay": 0.0, "batch_size": 8},
    "seed": 0,
}
NUM_CLASSES = 3
# The same data through conv towers with BatchNorm: its moving statistics are state that
# is not a gradient, so only synchronised batch statistics keep the workers identical.
BN_PRESET = {
    **TINY_PRESET, "name": "tiny_distribute_bn",
    "modalities": {
        "image": {**TINY_PRESET["modalities"]["image"],
                  "tower": {"type": "image/cnn", "filters": [4, 8], "dim": 16}},
        "audio": {**TINY_PRESET["modalities"]["audio"],
                  "tower": {"type": "audio/temporal_cnn", "filters": [8], "kernel_size": 3, "dim": 16}},
    },
}


def data(num_train=32, num_test=8):
    import mmkeras

    (x, y), (xt, yt) = mmkeras.datasets.synthetic(num_classes=NUM_CLASSES, num_train=num_train, num_test=num_test,
                                                   modalities=("image", "audio"), image_size=16, duration_s=0.25)
    return (x, y), (xt, yt)


def build(strategy=None, mixed_precision=None, seed=0, preset=None):
    """The tiny model, compiled with SGD, both inside ``strategy.scope()`` (optimizer variables too)."""
    import keras

    import mmkeras

    keras.utils.set_random_seed(seed)
    scope = strategy.scope() if strategy is not None else _null()
    with scope:
        model = mmkeras.build_model(preset or TINY_PRESET, num_classes=NUM_CLASSES, mixed_precision=mixed_precision,
                                    compile=False)
        # SGD + momentum: has optimizer state to back up, and (unlike Adam) does not amplify
        # float rounding differences between all-reduced and single-device gradients.
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9))
    return model


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def bn_preset(synchronized="auto"):
    return {**BN_PRESET, "modalities": {m: {**spec, "tower": {**spec["tower"], "bn_synchronized": synchronized}}
                                        for m, spec in BN_PRESET["modalities"].items()}}


def moving_statistics(model):
    """Every BatchNorm's moving mean and variance, in layer order."""
    import keras

    return [np.asarray(v) for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)]


def fit_reference(init_path, epochs, batch_size=8, preset=None):
    """Single process, default strategy, same global batch: the run distributed ones must match."""
    model = build(mixed_precision="float32", preset=preset)
    if init_path is not None:
        model.load_weights(init_path)
    (x, y), (xt, yt) = data()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0)
    return model
