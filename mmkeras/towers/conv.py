"""Convolutional towers: a small CNN and a small ResNet, for images and log-mel audio.

The convolutional body is shared; image and audio towers differ only in how the
final feature map becomes a token sequence (all positions for images, one token
per time step for audio) and, for the temporal audio CNN, in convolving over
time only (mel bands as channels).
"""

import keras
from keras import layers, ops

from mmkeras.layers import BatchNormalization
from mmkeras.layers.shapes import chain, downsample_mask
from mmkeras.towers.base import TOWERS, Tower

# Keras' BatchNormalization (momentum 0.99, moving statistics starting at 0 and 1)
# needs hundreds of steps before inference mode matches training: models trained
# briefly predicted at chance. With warm-started statistics, the lag that remains
# is the weights' drift over the ~1 / (1 - momentum) steps averaged: 0.5 tracks
# training on 480-1,600 examples where 0.8-0.9 still lost 5-10 points, and equals
# them after 6 epochs on 10,000 (benchmarks/README.md, "BatchNorm in the conv towers").
BN_MOMENTUM = 0.5


def batch_norm(name, dtype, momentum=BN_MOMENTUM, synchronized="auto", warm_start=True):
    """The conv towers' BatchNormalization (the one place its settings are chosen).

    ``warm_start`` uses :class:`~mmkeras.layers.BatchNormalization`
    (moving statistics averaged exactly over the first steps). ``synchronized="auto"``
    syncs the batch moments across the replicas of a ``tf.distribute`` strategy
    under the TensorFlow backend, so every worker holds the same moving statistics
    (on one device it equals plain BatchNorm); other backends do not support it.
    """
    if synchronized == "auto":
        synchronized = keras.backend.backend() == "tensorflow"
    cls = BatchNormalization if warm_start else layers.BatchNormalization
    return cls(momentum=momentum, synchronized=bool(synchronized), dtype=dtype, name=name)


def _conv_bn_relu(filters, dtype, name, rank=2, kernel_size=3, bn=None):
    conv = layers.Conv2D if rank == 2 else layers.Conv1D
    return [
        conv(filters, kernel_size, padding="same", use_bias=False, dtype=dtype, name=f"{name}_conv"),
        batch_norm(f"{name}_bn", dtype, **(bn or {})),
        layers.Activation("relu", dtype=dtype, name=f"{name}_relu"),
    ]


class _ConvBody(Tower):
    """Runs ``self.body`` (a list of layers or residual stages) then projects to ``dim``."""

    rank = 2  # spatial rank of the convolutions: 2 = [B, H, W, C] maps, 1 = [B, T, C]

    def __init__(self, dim=128, dropout=0.0, bn_momentum=BN_MOMENTUM, bn_synchronized="auto", bn_warm_start=True,
                 **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        self.bn_momentum = float(bn_momentum)
        self.bn_synchronized = bn_synchronized
        self.bn_warm_start = bool(bn_warm_start)
        self.project = layers.Dense(dim, activation="relu", dtype=self.dtype_policy, name="project")
        self.drop = layers.Dropout(dropout, dtype=self.dtype_policy)

    def feature_map(self, x, training=None):
        raise NotImplementedError

    def feature_map_shape(self, shape, build=False):
        raise NotImplementedError

    def time_downsampling(self):
        """Pooling factors applied to the time axis, in order (for the mask)."""
        return []

    def _as_map(self, shape_or_x):
        return len(shape_or_x) == 3 and self.rank == 2  # [B, T, F] log-mel -> one-channel image

    def encode(self, x, mask=None, training=None):
        if self._as_map(x.shape):
            x = ops.expand_dims(x, -1)
        fmap = self.feature_map(x, training=training)
        sequence = self.to_sequence(fmap)
        if mask is not None:
            for size in self.time_downsampling():
                mask = downsample_mask(mask, size)
        return self.drop(self.project(sequence), training=training), mask

    def encode_shape(self, input_shape, build=False):
        shape = input_shape + (1,) if self._as_map(input_shape) else input_shape
        fmap = self.feature_map_shape(shape, build)
        return chain([self.project, self.drop], self.sequence_shape(fmap), build)

    @property
    def bn(self):
        """Keyword arguments of every :func:`batch_norm` in this tower."""
        return {"momentum": self.bn_momentum, "synchronized": self.bn_synchronized, "warm_start": self.bn_warm_start}

    def get_config(self):
        return {**super().get_config(), "bn_momentum": self.bn_momentum, "bn_synchronized": self.bn_synchronized,
                "bn_warm_start": self.bn_warm_start}

    def to_sequence(self, fmap):
        return ops.reshape(fmap, (-1,) + self.sequence_shape(fmap.shape)[1:])

    def sequence_shape(self, fmap_shape):
        if self.rank == 1:  # 1-D convolutions already give [B, T, C]
            return tuple(fmap_shape)
        b, h, w, c = fmap_shape
        return (b, h * w, c)


class _TimeSequenceMixin:
    """Audio: keep the time axis, fold frequency into channels."""

    def sequence_shape(self, fmap_shape):
        b, t, f, c = fmap_shape
        return (b, t, f * c)


class ConvTower(_ConvBody):
    """Conv -> BN -> ReLU -> MaxPool blocks.

    Args:
        filters: list of int. Filters per block; each block halves the resolution.
        kernel_size: int. Convolution width.
        dim: int. Output width.
        dropout: float. Dropout on the output sequence.
        bn_momentum: float. BatchNormalization momentum of the moving statistics.
        bn_synchronized: ``"auto"`` or bool. Sync batch statistics across
            ``tf.distribute`` replicas (``"auto"``: under the TensorFlow backend).
        bn_warm_start: bool. Moving statistics start as the exact average of the
            first batches instead of Keras' initial 0 and 1.

    Example:
    ```python
    tower = ConvTower(filters=[16, 32], dim=64)
    out = tower(keras.ops.zeros((2, 32, 32, 3)))  # out["pooled"]: [2, 64]
    ```
    """

    def __init__(self, filters=(32, 64, 128), kernel_size=3, dim=128, dropout=0.0, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        if not filters:
            raise ValueError(f"{type(self).__name__} needs at least one block of filters, got {filters!r}")
        self.filters = list(filters)
        self.limit_layers("filters", 4 * len(self.filters))
        self.kernel_size = int(kernel_size)
        pool = layers.MaxPooling2D if self.rank == 2 else layers.MaxPooling1D
        self.blocks = []
        for i, f in enumerate(self.filters):
            self.blocks.extend(_conv_bn_relu(f, self.dtype_policy, f"block{i}", self.rank, self.kernel_size, self.bn))
            self.blocks.append(pool(2, padding="same", dtype=self.dtype_policy, name=f"block{i}_pool"))

    def feature_map(self, x, training=None):
        for layer in self.blocks:
            x = layer(x, training=training)
        return x

    def feature_map_shape(self, shape, build=False):
        return chain(self.blocks, shape, build)

    def time_downsampling(self):
        return [2] * len(self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


class ResNetTower(_ConvBody):
    """A small ResNet: a stem, then stages of basic residual blocks.

    Args:
        widths: list of int. Channels per stage; every stage after the first
            halves the resolution.
        blocks_per_stage: int. Residual blocks in each stage.
        dim: int. Output width.
        dropout: float. Dropout on the output sequence.
        bn_momentum: float. BatchNormalization momentum of the moving statistics.
        bn_synchronized: ``"auto"`` or bool. Sync batch statistics across
            ``tf.distribute`` replicas (``"auto"``: under the TensorFlow backend).
        bn_warm_start: bool. Moving statistics start as the exact average of the
            first batches instead of Keras' initial 0 and 1.

    Example:
    ```python
    tower = ResNetTower(widths=[16, 32], blocks_per_stage=1, dim=64)
    out = tower(keras.ops.zeros((2, 32, 32, 3)))
    ```
    """

    def __init__(self, widths=(32, 64, 128), blocks_per_stage=2, dim=128, dropout=0.0, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        self.widths = list(widths)
        self.blocks_per_stage = blocks_per_stage
        self.limit_layers("widths x blocks_per_stage", 8 * len(self.widths) * int(blocks_per_stage))
        dt = self.dtype_policy
        self.stem = _conv_bn_relu(self.widths[0], dt, "stem", bn=self.bn)
        # Flat parallel lists keep Keras' weight tracking simple.
        self.branches, self.shortcuts, self.strides = [], [], []
        for s, width in enumerate(self.widths):
            for b in range(blocks_per_stage):
                stride = 2 if (s > 0 and b == 0) else 1
                name = f"s{s}b{b}"
                branch = [
                    layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, dtype=dt,
                                  name=f"{name}_c1"),
                    batch_norm(f"{name}_bn1", dt, **self.bn),
                    layers.Activation("relu", dtype=dt),
                    layers.Conv2D(width, 3, padding="same", use_bias=False, dtype=dt, name=f"{name}_c2"),
                    batch_norm(f"{name}_bn2", dt, **self.bn),
                ]
                in_width = self.widths[max(s - 1, 0)] if b == 0 else width
                shortcut = None
                if stride != 1 or in_width != width:
                    # Stride applied by subsampling before a stride-1 1x1 conv (same result): TF 2.21's
                    # oneDNN Conv2DBackpropFilter for a strided 1x1 VALID conv corrupts the heap and
                    # aborts the process when the batch size is odd (reproduced on this CPU, batch 1/3/5).
                    # Upstream: oneDNN's 1x1 stride-2 backward-weights kernel writes past its workspace,
                    # https://github.com/uxlfoundation/oneDNN/issues/6035
                    shortcut = layers.Conv2D(width, 1, use_bias=False, dtype=dt, name=f"{name}_short")
                self.branches.append(branch)
                self.shortcuts.append(shortcut)
                self.strides.append(stride)

    def feature_map(self, x, training=None):
        for layer in self.stem:
            x = layer(x, training=training)
        for branch, shortcut, stride in zip(self.branches, self.shortcuts, self.strides):
            h = x
            for layer in branch:
                h = layer(h, training=training)
            x = ops.relu(h + (shortcut(x[:, ::stride, ::stride, :]) if shortcut is not None else x))
        return x

    def feature_map_shape(self, shape, build=False):
        shape = chain(self.stem, shape, build)
        for branch, shortcut, stride in zip(self.branches, self.shortcuts, self.strides):
            if shortcut is not None:
                b, h, w, c = shape
                subsampled = (b,) + tuple(None if n is None else -(-n // stride) for n in (h, w)) + (c,)
                chain([shortcut], subsampled, build)
            shape = chain(branch, shape, build)
        return shape

    def get_config(self):
        return {**super().get_config(), "widths": self.widths, "blocks_per_stage": self.blocks_per_stage}


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("image/cnn")
class ImageCNN(ConvTower):
    """Small CNN over ``[B, H, W, C]`` images; tokens are the final feature-map cells."""

    accepts_mask = False


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("image/resnet")
class ImageResNet(ResNetTower):
    """Small ResNet over ``[B, H, W, C]`` images."""

    accepts_mask = False


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("audio/cnn")
class AudioCNN(_TimeSequenceMixin, ConvTower):
    """Small CNN over ``[B, T, F]`` log-mel features; one token per pooled time step."""


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("audio/temporal_cnn")
class AudioTemporalCNN(ConvTower):
    """1-D CNN over time with the mel bands as input channels (TC-ResNet-style front end).

    Convolving over time only keeps each layer's feature map ``F`` times smaller
    than a 2-D CNN's, so it trains several times faster on CPU; on FSDD speech it
    is also more accurate (see benchmarks/README.md). One token per pooled frame.

    Args:
        filters: list of int. Filters per block; each block halves the frame count.
        kernel_size: int. Convolution width in frames.
        dim: int. Output width.
        dropout: float. Dropout on the output sequence.
        bn_momentum: float. BatchNormalization momentum of the moving statistics.
        bn_synchronized: ``"auto"`` or bool. Sync batch statistics across
            ``tf.distribute`` replicas (``"auto"``: under the TensorFlow backend).
        bn_warm_start: bool. Moving statistics start as the exact average of the
            first batches instead of Keras' initial 0 and 1.

    Example:
    ```python
    tower = AudioTemporalCNN(filters=[32, 64], kernel_size=5, dim=64)
    out = tower(keras.ops.zeros((2, 61, 40)))  # out["sequence"]: [2, 16, 64]
    ```
    """

    rank = 1
