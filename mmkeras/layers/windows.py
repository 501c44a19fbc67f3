"""Long inputs as windows: fold windows into the batch, run the tower, pool over valid windows.

``[B, N, T, F]`` windows become ``[B * N, T, F]`` for one batched tower call (cost
linear in ``N``); :class:`WindowPooling` turns the ``[B * N, D]`` pooled vectors
back into a tower output dict. The tower itself stays a top-level layer of the
model, so ``.keras`` saving and loading treat it like any other tower.
"""

import keras
from keras import ops

from mmkeras.layers.shapes import sequence_output_spec
from mmkeras.layers.stateless import StatelessLayer


@keras.saving.register_keras_serializable(package="mmkeras")
class FoldWindows(StatelessLayer):
    """``[B, N, ...]`` -> ``[B * N, ...]``.

    Example:
    ```python
    flat = FoldWindows()(keras.ops.zeros((2, 3, 61, 40)))  # [6, 61, 40]
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._build_at_init()

    def call(self, windows):
        return ops.reshape(windows, (-1,) + tuple(windows.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None or input_shape[1] is None else input_shape[0] * input_shape[1]
        return (batch,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="mmkeras")
class WindowPooling(StatelessLayer):
    """Per-window vectors ``[B * N, D]`` + validity ``[B, N]`` -> tower output dict.

    ``sequence`` holds one token per window, ``mask`` the valid windows and
    ``pooled`` the mean over valid windows (zeros when none is valid), so every
    fusion block accepts it.

    Args:
        num_windows: int. N, the number of windows per example.

    Example:
    ```python
    out = WindowPooling(3)(keras.ops.ones((6, 32)), keras.ops.ones((2, 3)))  # pooled: [2, 32]
    ```
    """

    def __init__(self, num_windows, **kwargs):
        super().__init__(**kwargs)
        self.num_windows = num_windows
        self.supports_masking = False  # validity arrives as an input; the output's mask is in the dict
        self._build_at_init()

    def call(self, pooled, valid):
        tokens = ops.reshape(pooled, (-1, self.num_windows, pooled.shape[-1]))
        mask = ops.cast(valid, "bool")
        weights = ops.cast(ops.expand_dims(mask, -1), tokens.dtype)
        count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1.0, tokens.dtype))
        return {"sequence": tokens, "mask": mask, "pooled": ops.sum(tokens * weights, axis=1) / count}

    def compute_mask(self, *args, **kwargs):
        return None

    def compute_output_spec(self, pooled, valid):
        return sequence_output_spec((valid.shape[0], self.num_windows, pooled.shape[-1]), pooled.dtype)

    def get_config(self):
        return {**super().get_config(), "num_windows": self.num_windows}
