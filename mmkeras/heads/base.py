"""Heads: map the fused vector to a task output, always in float32.

Each head knows its Keras loss and metrics, so the model can compile itself
from the preset (one loss per head, weighted for multi-task learning).
"""

import keras
from keras import layers

from mmkeras.layers.shapes import chain
from mmkeras.registry import Registry
from mmkeras.utils.safe_loading import budgeted_build

HEADS = Registry("head")


class Head(keras.layers.Layer):
    """Base class of heads.

    Args:
        units: int. Output width (classes, labels or regression targets).
        hidden_units: int or None. Optional hidden Dense layer before the output.
        dropout: float. Dropout before the output layer.
    """

    activation = None

    def __init__(self, units, hidden_units=None, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.hidden = (
            layers.Dense(hidden_units, activation="relu", dtype=self.dtype_policy, name="hidden")
            if hidden_units
            else None
        )
        self.drop = layers.Dropout(dropout, dtype=self.dtype_policy)
        # float32 whatever the global policy: exported scores must be float32.
        self.out = layers.Dense(units, activation=self.activation, dtype="float32", name="out")

    def build(self, input_shape):
        layers_in_order = ([self.hidden] if self.hidden is not None else []) + [self.drop, self.out]
        # Under safe-mode loading (a head in any Keras model), nothing is allocated over the budget.
        with budgeted_build(f"{self.name!r} head ({type(self).__name__})", self.get_config()) as budget:
            chain(layers_in_order, input_shape, build=True)
            budget.measure(self)

    def call(self, x, training=None):
        if self.hidden is not None:
            x = self.hidden(x)
        return self.out(self.drop(x, training=training))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def compute_output_spec(self, x, training=None):
        return keras.KerasTensor(self.compute_output_shape(tuple(x.shape)), dtype="float32")

    def default_loss(self):
        raise NotImplementedError

    def default_metrics(self):
        raise NotImplementedError

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "hidden_units": self.hidden_units,
            "dropout": self.dropout,
        }


@keras.saving.register_keras_serializable(package="mmkeras")
@HEADS.register("classification")
class ClassificationHead(Head):
    """Single-label classification: softmax probabilities over ``units`` classes.

    Example:
    ```python
    probs = ClassificationHead(units=10)(fused)  # [B, 10], rows sum to 1
    ```
    """

    activation = "softmax"

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy()

    def default_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


@keras.saving.register_keras_serializable(package="mmkeras")
@HEADS.register("multilabel")
class MultiLabelHead(Head):
    """Multi-label classification: independent sigmoid per label.

    Example:
    ```python
    probs = MultiLabelHead(units=5)(fused)  # [B, 5], each in [0, 1]
    ```
    """

    activation = "sigmoid"

    def default_loss(self):
        return keras.losses.BinaryCrossentropy()

    def default_metrics(self):
        return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc", multi_label=True)]


@keras.saving.register_keras_serializable(package="mmkeras")
@HEADS.register("regression")
class RegressionHead(Head):
    """Regression: a linear float32 output trained with mean squared error.

    Example:
    ```python
    y = RegressionHead(units=1)(fused)
    ```
    """

    def default_loss(self):
        return keras.losses.MeanSquaredError()

    def default_metrics(self):
        return [keras.metrics.MeanAbsoluteError(name="mae")]


def build_head(config, dtype=None):
    """Builds a head from ``{"name": "scores", "type": "classification", "units": 10, ...}``.

    ``loss_weight`` and ``class_names`` are model-level keys and are ignored here.

    Example:
    ```python
    head = build_head({"name": "digit", "type": "classification", "units": 10})
    ```
    """
    config = {k: v for k, v in config.items() if k not in ("loss_weight", "class_names")}
    kind = config.pop("type")
    return HEADS.build(kind, name=config.pop("name"), dtype=dtype, **config)
