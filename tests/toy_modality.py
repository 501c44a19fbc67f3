"""A toy fourth modality, ``sensor``, registered from user code (no mmkeras file knows its name).

A sensor value is a small binary file: the magic bytes ``MMSENS1\\n`` then ``size``
little-endian float32 readings (``b""`` when absent). The modality declares, in this
one class, everything the library asks a modality: its request limit
(``max_bytes``, checked in the graph), its file kind (magic bytes, for manifests and
``mmkeras predict``), request checks (magic, length) and learnable state: per-reading
mean and variance (:class:`SensorStats`), learned by ``adapt`` from training files and
used to standardise the readings. ``sensor/mlp`` is a tower for its features.

Tests import it with ``sys.path`` holding ``tests/`` (``import toy_modality``), and
``mmkeras --plugin toy_modality`` imports it in the command line.

Example:
```python
import toy_modality
model = mmkeras.build_model(toy_modality.PRESET, num_classes=2)
model.fit({"sensor": toy_modality.sensor_files(readings)}, labels)
```
"""

import keras
import numpy as np
from keras import layers, ops

from mmkeras.modalities import MODALITIES, Modality
from mmkeras.towers import TOWERS, Tower

NAME = "sensor"
MAGIC = b"MMSENS1\n"
SIZE = 4
MAX_BYTES = 4096


def encode_sensor(readings):
    """One sensor file's bytes: the magic, then the readings as little-endian float32."""
    return MAGIC + np.asarray(readings, "<f4").tobytes()


def decode_sensor(data, size, where="sensor value"):
    """The readings of one sensor file (numpy); a ValueError says what is wrong."""
    if not data.startswith(MAGIC) or len(data) != len(MAGIC) + 4 * size:
        raise ValueError(f"{where}: expected {MAGIC!r} and {size} float32 readings ({len(MAGIC) + 4 * size} "
                         f"bytes), got {len(data)} bytes starting {data[:8]!r}")
    return np.frombuffer(data[len(MAGIC):], "<f4")


def sensor_files(rows):
    """A list of sensor file bytes, one per row of readings."""
    return [encode_sensor(row) for row in rows]


@keras.saving.register_keras_serializable(package="tests")
class SensorStats(keras.layers.Layer):
    """Per-reading mean and variance (non-trainable), and how many files they were learned from."""

    def __init__(self, size, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.size = size
        self.mean = self.add_weight(shape=(size,), initializer="zeros", trainable=False, name="mean")
        self.variance = self.add_weight(shape=(size,), initializer="ones", trainable=False, name="variance")
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")
        self.built = True  # the weights exist from construction: a saved model restores them

    def learned_from(self):
        return int(ops.convert_to_numpy(self.count))

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@MODALITIES.register(NAME)
class SensorModality(Modality):
    """Sensor files (``MMSENS1`` magic + float32 readings), standardised by statistics learned in ``adapt``."""

    description = "sensor file bytes (MMSENS1 magic + float32 readings), b'' when absent"
    serving_expects = "MMSENS1 sensor file bytes"
    reads_files = True
    defaults = {"size": SIZE}
    limits = {"max_bytes": MAX_BYTES}
    limit_docs = {"max_bytes": "bytes of one sensor file"}
    file_signatures = ((MAGIC, "MMSENS1"),)
    file_expected = "an MMSENS1 sensor file"
    file_noun = "a sensor file"

    def feature_specs(self, config):
        return {self.name: ((config["size"],), "float32")}

    def make_state(self, config):
        return {"stats": SensorStats(config["size"], name=f"{self.name}_stats")}

    def needs_adapt(self, state):
        return state["stats"].learned_from() == 0

    def adapt(self, state, values, config):
        if not isinstance(values, list):  # a tf.data.Dataset of raw values
            values = list(values.as_numpy_iterator())
        rows = np.stack([decode_sensor(bytes(v), config["size"]) for v in values if len(v)])
        stats = state["stats"]
        stats.mean.assign(rows.mean(axis=0))
        stats.variance.assign(rows.var(axis=0))
        stats.count.assign(float(len(rows)))

    def unadapted(self, config):
        return "sensor statistics that have not been learned"

    def state_summary(self, state):
        return f"statistics from {state['stats'].learned_from()} files"

    def preprocess_batch(self, values, config, state):
        import tensorflow as tf

        from mmkeras.preprocessing import checks

        size, limit = config["size"], config["max_bytes"]
        expected = len(MAGIC) + 4 * size
        length = tf.strings.length(values)
        present = length > 0
        done = checks.check_stages(self.name, [
            (length > limit, f"{{}} bytes, more than the limit max_bytes={limit}", [length]),
            (present & tf.not_equal(tf.strings.substr(values, 0, len(MAGIC)), MAGIC),
             "not a sensor file (expected bytes starting with MMSENS1)", []),
            (present & tf.not_equal(length, expected), f"{{}} bytes; a sensor file of {size} readings has "
                                                       f"{expected}", [length]),
        ])
        with tf.control_dependencies([done]):
            body = tf.where(present, values, MAGIC + bytes(4 * size))  # absent: zero readings, then masked
            readings = tf.reshape(tf.io.decode_raw(tf.strings.substr(body, len(MAGIC), 4 * size), tf.float32,
                                                   little_endian=True), [-1, size])
        stats = state["stats"]
        x = (readings - tf.convert_to_tensor(stats.mean)) / tf.sqrt(tf.convert_to_tensor(stats.variance) + 1e-6)
        return {self.name: tf.where(present[:, None], x, 0.0)}, tf.cast(present, tf.float32)

    def example(self, config):
        return encode_sensor(np.full(config["size"], 0.5))


class MLPTower(Tower):
    """A one-token tower over a feature vector (one Dense layer); subclass and register it per modality."""

    accepts_mask = False

    def __init__(self, dim=16, dropout=0.0, activation="relu", **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        self.activation = activation
        self.hidden = layers.Dense(dim, activation=activation, dtype=self.dtype_policy, name="hidden")

    def encode(self, x, mask=None, training=None):
        return ops.expand_dims(self.hidden(x), 1), None  # one token

    def encode_shape(self, input_shape, build=False):
        if build:
            self.hidden.build(input_shape)
        return (input_shape[0], 1, self.dim)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@keras.saving.register_keras_serializable(package="tests")
@TOWERS.register("sensor/mlp")
class SensorMLP(MLPTower):
    """The sensor modality's tower."""


PRESET = {
    "modalities": {NAME: {"tower": {"type": "sensor/mlp", "dim": 16}}},
    "fusion": {"type": "fusion/concat", "dim": 16},
    "training": {"learning_rate": 1e-2, "batch_size": 32},
}


def make_data(n=96, seed=0, offset=50.0, scale=10.0):
    """``(readings [n, SIZE], labels)``: class = whether the first reading is above ``offset``.

    Readings sit far from 0 (``offset``, ``scale``), so a model learns only once they are standardised.
    """
    rng = np.random.default_rng(seed)
    readings = offset + scale * rng.normal(size=(n, SIZE))
    return readings.astype("float32"), (readings[:, 0] > offset).astype("int32")
