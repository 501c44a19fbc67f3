"""Learned absolute position embedding added to a token sequence."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned ``[1, T, D]`` position table to a ``[B, T, D]`` sequence.

    Args:
        initializer: str. Initializer of the table (the reference model uses
            ``"random_normal"``).

    Example:
    ```python
    x = PositionEmbedding()(keras.ops.zeros((2, 16, 64)))
    ```
    """

    def __init__(self, initializer="random_normal", **kwargs):
        super().__init__(**kwargs)
        self.initializer = initializer
        self.supports_masking = True  # positions are added everywhere; the mask passes through

    def build(self, input_shape):
        self.table = self.add_weight(
            name="table",
            shape=(1, input_shape[1], input_shape[2]),
            initializer=self.initializer,
        )

    def call(self, x):
        return x + ops.cast(self.table, x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "initializer": self.initializer}
