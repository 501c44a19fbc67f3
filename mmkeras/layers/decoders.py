"""Decoders from a latent vector back to a modality's feature tensor (the multimodal VAE's).

One class covers every float feature by its shape: ``[H, W, C]`` images decode
through 2-D transposed convolutions, ``[T, F]`` frame sequences (log-mel audio)
through 1-D ones along time, ``[D]`` vectors through a Dense layer.
"""

import math

import keras
from keras import layers, ops

from mmkeras.layers.shapes import chain

_TRANSPOSED = {1: layers.Conv1DTranspose, 2: layers.Conv2DTranspose}
_CONV = {1: layers.Conv1D, 2: layers.Conv2D}


@keras.saving.register_keras_serializable(package="mmkeras")
class FeatureDecoder(keras.layers.Layer):
    """Latent ``[B, Z]`` -> a feature tensor ``[B, *feature_shape]`` (float32).

    For a feature with spatial axes (``[H, W, C]`` or ``[T, F]``): Dense to a grid
    ``2**len(filters)`` times smaller on every spatial axis (rounded up) ->
    reshape -> one stride-2 transposed convolution (ReLU) per entry of ``filters``
    -> a convolution to the channels -> cropped to the exact shape. For ``[D]``:
    a hidden Dense (``filters[0]`` units, ReLU) then Dense to ``D``. The output is
    the likelihood's parameter (logits or mean; the task decides).

    With ``standardize``, the network predicts standardised values and the output
    is ``prediction * scale + offset``, where ``offset`` and ``scale`` are
    non-trainable weights (saved with the model) set from data by
    :meth:`set_statistics`: features far from zero mean and unit variance (log-mel
    values around -9) are then reachable from the first step.

    Args:
        feature_shape: tuple of int. The feature shape without the batch axis.
        filters: list of int. Channels of the upsampling stages, widest first.
        kernel_size: int. Kernel of the convolutions.
        standardize: bool. Add the ``offset``/``scale`` output statistics.

    Example:
    ```python
    pixels_logits = FeatureDecoder((28, 28, 1), filters=[64, 32])(z)   # [B, 28, 28, 1]
    log_mel = FeatureDecoder((61, 40), filters=[128, 64])(z)           # [B, 61, 40]
    ```
    """

    def __init__(self, feature_shape, filters=(64, 32), kernel_size=3, standardize=False, **kwargs):
        super().__init__(**kwargs)
        self.standardize = bool(standardize)
        self.feature_shape = tuple(int(d) for d in feature_shape)
        self.filters = [int(f) for f in filters]
        self.kernel_size = int(kernel_size)
        if not self.filters:
            raise ValueError("FeatureDecoder needs at least one entry in filters")
        spatial = len(self.feature_shape) - 1
        if spatial not in (0, 1, 2):
            raise ValueError(f"FeatureDecoder decodes [H, W, C], [T, F] or [D] features, got shape "
                             f"{self.feature_shape}")
        channels = self.feature_shape[-1]
        if spatial == 0:
            self.stages = [layers.Dense(self.filters[0], activation="relu", name="hidden"),
                           layers.Dense(channels, dtype="float32", name="out")]
            self.grid = ()
            return
        factor = 2 ** len(self.filters)
        self.grid = tuple(math.ceil(d / factor) for d in self.feature_shape[:-1])
        self.stages = [layers.Dense(math.prod(self.grid) * self.filters[0], activation="relu", name="project"),
                       layers.Reshape(self.grid + (self.filters[0],), name="grid")]
        self.stages += [_TRANSPOSED[spatial](f, self.kernel_size, strides=2, padding="same", activation="relu",
                                             name=f"up{i}") for i, f in enumerate(self.filters)]
        self.stages.append(_CONV[spatial](channels, self.kernel_size, padding="same", dtype="float32", name="out"))

    def build(self, input_shape):
        chain(self.stages, input_shape, build=True)
        if self.standardize:
            self.offset = self.add_weight(name="offset", shape=(), initializer="zeros", trainable=False,
                                          dtype="float32", autocast=False)
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones", trainable=False,
                                         dtype="float32", autocast=False)

    def set_statistics(self, mean, std):
        """Sets the output statistics (``standardize=True``) to the features' mean and std."""
        if not self.standardize:
            raise ValueError(f"{self.name}: set_statistics needs a decoder built with standardize=True")
        if not std > 0:
            raise ValueError(f"{self.name}: feature std must be positive, got {std!r}")
        self.offset.assign(float(mean))
        self.scale.assign(float(std))

    def statistics_set(self):
        """True once :meth:`set_statistics` ran (or nothing needs setting)."""
        if not self.standardize:
            return True
        return not (float(ops.convert_to_numpy(self.offset)) == 0.0 and float(ops.convert_to_numpy(self.scale)) == 1.0)

    def call(self, z):
        x = z
        for layer in self.stages:
            x = layer(x)
        if self.grid:  # crop the upsampled grid to the feature's size
            x = x[(slice(None),) + tuple(slice(0, d) for d in self.feature_shape[:-1])]
        x = ops.cast(x, "float32")
        if self.standardize:
            x = x * self.scale + self.offset
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.feature_shape

    def compute_output_spec(self, z):
        return keras.KerasTensor(self.compute_output_shape(tuple(z.shape)), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "feature_shape": list(self.feature_shape), "filters": self.filters,
                "kernel_size": self.kernel_size, "standardize": self.standardize}
