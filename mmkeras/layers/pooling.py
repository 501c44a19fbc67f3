"""Mean pooling over the valid positions of a sequence."""

import keras
from keras import ops

from mmkeras.layers.stateless import StatelessLayer


@keras.saving.register_keras_serializable(package="mmkeras")
class MaskedMeanPooling(StatelessLayer):
    """Averages ``[B, T, D]`` over positions where ``mask`` is true.

    Rows whose mask is all false pool to zeros (never NaN).

    Example:
    ```python
    pooled = MaskedMeanPooling()(sequence, mask)  # [B, D]
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # masks arrive explicitly; consume any attached one
        self._build_at_init()

    def call(self, x, mask=None):
        if mask is None:
            return ops.mean(x, axis=1)
        m = ops.cast(ops.expand_dims(mask, -1), x.dtype)
        total = ops.sum(x * m, axis=1)
        count = ops.maximum(ops.sum(m, axis=1), ops.cast(1.0, x.dtype))
        return total / count

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])
