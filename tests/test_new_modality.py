"""A fourth modality added through the public registries alone trains, saves and serves from raw values.

``vector`` is a toy numeric modality: a raw value is comma-separated numbers (a
UTF-8 string, ``""`` when absent), the features a fixed-size float vector. This
file registers it and an MLP tower for it and touches no other mmkeras file.
"""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.modalities import MODALITIES, Modality
from mmkeras.towers import TOWERS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_modality import MLPTower  # noqa: E402

SIZE = 6


@MODALITIES.register("vector")
class VectorModality(Modality):
    description = "comma-separated numbers as UTF-8 text, '' when absent"
    defaults = {"size": SIZE}

    def feature_specs(self, config):
        return {self.name: ((config["size"],), "float32")}

    def preprocess_batch(self, values, config, state):
        present = tf.strings.length(values) > 0
        text = tf.where(present, values, ",".join(["0"] * config["size"]))  # absent: parse zeros
        numbers = tf.strings.to_number(tf.strings.split(text, ","), tf.float32)
        dense = numbers.to_tensor(0.0, shape=[None, config["size"]])
        tf.debugging.assert_equal(numbers.row_lengths(), tf.cast(config["size"], tf.int64),
                                  message=f"mmkeras: input '{self.name}' needs {config['size']} numbers")
        return {self.name: tf.where(present[:, None], dense, 0.0)}, tf.cast(present, tf.float32)

    def example(self, config):
        return ",".join(["0.5"] * config["size"]).encode()


@keras.saving.register_keras_serializable(package="tests")
@TOWERS.register("vector/mlp")
class VectorMLP(MLPTower):
    """An MLP tower for the vector features (the toy modality module's one-token tower)."""


PRESET = {
    "modalities": {
        "vector": {"tower": {"type": "vector/mlp", "dim": 16}},
        "image": {"preprocessing": {"height": 8, "width": 8}, "tower": {"type": "image/cnn", "filters": [8],
                                                                         "dim": 16}},
    },
    "fusion": {"type": "fusion/gated", "dim": 16},
    "training": {"learning_rate": 1e-2},
}


def _data(n=96, seed=0):
    """Class = sign of the vector's mean; images are uninformative noise."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, SIZE))
    labels = (vectors.mean(axis=1) > 0).astype("int32")
    images = [mmkeras.codecs.encode_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(n)]
    return {"vector": [",".join(f"{v:.4f}" for v in row) for row in vectors], "image": images}, labels


def test_a_registered_modality_trains_saves_and_serves_from_raw_values(tmp_path):
    assert mmkeras.modalities.modality_order()[:3] == ["image", "audio", "text"]
    assert mmkeras.modalities.modality_order()[-1] == "vector"  # present column after the built-in ones
    assert mmkeras.preprocessing.MODALITY_ORDER[-1] == "vector"  # the public order grows with the registry
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model(PRESET, num_classes=2)
    assert model.modalities == ["image", "vector"]
    x, y = _data()
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    x_test, y_test = _data(64, seed=1)
    assert model.evaluate(x_test, y_test, verbose=0)[1] >= 0.8

    features = model.preprocess({"image": x_test["image"][:2], "vector": ["", x_test["vector"][1]]})
    np.testing.assert_array_equal(features["present"], [[1, 0], [1, 1]])
    np.testing.assert_array_equal(features["vector"][0], np.zeros(SIZE))

    loaded = keras.saving.load_model(model.save(tmp_path / "m.keras") or tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0), atol=1e-6)

    path = mmkeras.export_saved_model(model, tmp_path / "export")
    serve = tf.saved_model.load(path).signatures["serving_default"]
    out = serve(image=tf.constant(x_test["image"][:4]), vector=tf.constant(x_test["vector"][:4]))
    np.testing.assert_allclose(out["scores"].numpy(), model.predict({m: v[:4] for m, v in x_test.items()},
                                                                     verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="input 'vector', example 0: .*needs 6 numbers"):
        model.predict({"image": x_test["image"][:1], "vector": ["1,2"]}, verbose=0)
