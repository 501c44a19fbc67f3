"""EfficientNet-Lite image tower (keras.ops only), by default Lite0 with the converted ImageNet weights.

EfficientNet-Lite is EfficientNet-B0 made friendly to mobile accelerators: ReLU6
instead of swish, no squeeze-and-excitation, a fixed 32-filter stem and 1280-filter
head. Convolutions use ``padding="same"``, which is TensorFlow's SAME padding (more
padding bottom/right on stride 2), as in the TensorFlow original and in the PyTorch
port whose weights this tower loads; keras-hub's EfficientNetBackbone pads
symmetrically (timm-style) and cannot reproduce these weights exactly.

Inputs are ``[B, H, W, 3]`` (or 1 channel, repeated to 3) scaled as the original:
``(pixel - 127) / 128``, mmkeras's ``normalize="efficientnet_lite"``, which a tower with
``weights`` implies (with 224x224 RGB images, the size the weights are trained at).
"""

import keras
from keras import layers, ops

from mmkeras.layers.shapes import chain
from mmkeras.towers.base import TOWERS, Tower
from mmkeras.utils.safe_loading import refuse_external_reference

# (repeats, kernel, first stride, expand ratio, output filters) per stage of Lite0.
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_FILTERS, HEAD_FILTERS = 32, 1280


class _Block:
    """One MBConv block's layers: [expand conv, BN], depthwise conv, BN, project conv, BN."""

    def __init__(self, index, in_filters, out_filters, kernel, stride, expand, drop_rate, dtype):
        name = f"block{index}"
        mid = in_filters * expand
        self.expand = []
        if expand != 1:
            self.expand = [layers.Conv2D(mid, 1, use_bias=False, dtype=dtype, name=f"{name}_expand_conv"),
                           layers.BatchNormalization(epsilon=1e-3, dtype=dtype, name=f"{name}_expand_bn")]
        self.depthwise = [layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, dtype=dtype,
                                                 name=f"{name}_dwconv"),
                          layers.BatchNormalization(epsilon=1e-3, dtype=dtype, name=f"{name}_dwconv_bn")]
        self.project = [layers.Conv2D(out_filters, 1, use_bias=False, dtype=dtype, name=f"{name}_project_conv"),
                        layers.BatchNormalization(epsilon=1e-3, dtype=dtype, name=f"{name}_project_bn")]
        self.residual = stride == 1 and in_filters == out_filters
        # Stochastic depth: drops the whole residual branch per example (the original's drop_connect).
        self.drop = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), dtype=dtype, name=f"{name}_drop") \
            if self.residual and drop_rate > 0 else None

    def layers(self):
        return self.expand + self.depthwise + self.project + ([self.drop] if self.drop else [])

    def __call__(self, x, training=None):
        h = x
        for conv, bn in filter(None, (self.expand, self.depthwise)):
            h = ops.relu6(bn(conv(h), training=training))
        h = self.project[1](self.project[0](h), training=training)
        if not self.residual:
            return h
        return x + (self.drop(h, training=training) if self.drop else h)

    def shape(self, shape, build):
        shape = chain(self.expand + self.depthwise + self.project, shape, build)
        if self.drop and build and not self.drop.built:
            self.drop.build(shape)
        return shape


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("image/efficientnet_lite")
class ImageEfficientNetLite(Tower):
    """EfficientNet-Lite over images (Lite0 by default); tokens are the cells of the final feature map.

    With the default architecture, ``dim=None`` and no dropout, ``pooled`` is exactly
    the features the original ImageNet classifier reads (global average of the
    1280-channel head). Freezing (``tower.trainable = False``) also puts its
    BatchNorm layers in inference mode.

    Args:
        dim: int or None. None keeps the head's channels (1280); an int adds a
            linear projection to ``dim``.
        dropout: float. Dropout on the output sequence (training only).
        drop_connect_rate: float. Stochastic-depth rate of the last block (earlier
            blocks scale it down linearly), as in the original's training.
        weights: None, a registered weights name (``"efficientnet_lite0"``, see
            :mod:`mmkeras.weights`) or a path to a Lite0 ``.pth`` state dict. Loaded
            once, when the tower is built; not part of ``get_config``, so a saved model
            reloads its own (fine-tuned) weights without the weights package.
        stages: list of ``(repeats, kernel, stride, expand_ratio, filters)`` or None
            (Lite0's seven stages). Smaller stacks are for tests and tiny models; the
            pretrained weights need the default.
        stem_filters: int. Channels of the stride-2 stem (32 in Lite0).
        head_filters: int. Channels of the final 1x1 conv (1280 in Lite0).
        freeze_batchnorm: bool. Keep every BatchNorm layer frozen, in inference mode with
            the pretrained statistics, while the convolutions train. Fine-tuning on a
            few thousand images otherwise drifts the moving statistics away from the
            batch statistics the network trains with (Keras's transfer-learning advice).

    Example:
    ```python
    tower = ImageEfficientNetLite(weights="efficientnet_lite0")
    out = tower(keras.ops.zeros((2, 224, 224, 3)))  # sequence [2, 49, 1280], pooled [2, 1280]
    ```
    """

    accepts_mask = False

    def __init__(self, dim=None, dropout=0.0, drop_connect_rate=0.2, weights=None, stages=None,
                 stem_filters=STEM_FILTERS, head_filters=HEAD_FILTERS, freeze_batchnorm=False, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        refuse_external_reference("weights", weights, "image/efficientnet_lite tower")
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self.drop_connect_rate = drop_connect_rate
        self.weights_source = weights
        self.stages = [tuple(int(v) for v in stage) for stage in (stages or LITE0_STAGES)]
        self.stem_filters, self.head_filters = int(stem_filters), int(head_filters)
        # Seven layers per block, made here: counted before any is constructed.
        self.limit_layers("stages", 7 * sum(stage[0] for stage in self.stages))
        if weights is not None and not self.is_lite0():
            raise ValueError(f"{type(self).__name__}: weights={weights!r} are EfficientNet-Lite0's; they need the "
                             f"default stages, stem_filters={STEM_FILTERS} and head_filters={HEAD_FILTERS}")
        dt = self.dtype_policy
        self.stem = [layers.Conv2D(stem_filters, 3, 2, padding="same", use_bias=False, dtype=dt, name="stem_conv"),
                     layers.BatchNormalization(epsilon=1e-3, dtype=dt, name="stem_bn")]
        self.blocks = []
        in_filters = stem_filters
        total = sum(stage[0] for stage in self.stages)
        for repeats, kernel, stride, expand, out_filters in self.stages:
            for r in range(repeats):
                index = len(self.blocks)
                self.blocks.append(_Block(index, in_filters, out_filters, kernel, stride if r == 0 else 1, expand,
                                          drop_connect_rate * index / total, dt))
                in_filters = out_filters
        self.head = [layers.Conv2D(head_filters, 1, use_bias=False, dtype=dt, name="head_conv"),
                     layers.BatchNormalization(epsilon=1e-3, dtype=dt, name="head_bn")]
        self.project = layers.Dense(dim, dtype=dt, name="project") if dim is not None else None
        self.drop = layers.Dropout(dropout, dtype=dt, name="out_drop")
        # Every sub-layer in one flat list, tracked by Keras in a stable order.
        self.backbone_layers = self.stem + [layer for block in self.blocks for layer in block.layers()] + self.head
        self.after_trainable_change()

    def is_lite0(self):
        """Whether the architecture is EfficientNet-Lite0's (so its pretrained weights fit)."""
        return (self.stages == [tuple(stage) for stage in LITE0_STAGES] and self.stem_filters == STEM_FILTERS
                and self.head_filters == HEAD_FILTERS)

    def _rgb_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] not in (1, 3):
            raise ValueError(f"{type(self).__name__} takes [B, H, W, 3] (or 1-channel) images, got {input_shape}")
        return tuple(input_shape[:-1]) + (3,)

    def feature_map(self, x, training=None):
        self._rgb_shape(tuple(x.shape))
        if x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)  # grayscale -> the RGB stem the weights expect
        x = ops.relu6(self.stem[1](self.stem[0](x), training=training))
        for block in self.blocks:
            x = block(x, training=training)
        return ops.relu6(self.head[1](self.head[0](x), training=training))

    def encode(self, x, mask=None, training=None):
        fmap = self.feature_map(x, training=training)
        sequence = ops.reshape(fmap, (ops.shape(fmap)[0], -1, self.head_filters))
        if self.project is not None:
            sequence = self.project(sequence)
        return self.drop(sequence, training=training), None

    def encode_shape(self, input_shape, build=False):
        shape = chain(self.stem, self._rgb_shape(input_shape), build)
        for block in self.blocks:
            shape = block.shape(shape, build)
        b, h, w, c = chain(self.head, shape, build)
        layers_after = ([self.project] if self.project is not None else []) + [self.drop]
        return chain(layers_after, (b, h * w if h and w else None, c), build)

    @classmethod
    def implied_preprocessing(cls, options):
        """Pretrained weights imply 224x224 RGB images scaled as the original, ``(pixel - 127) / 128``."""
        refuse_external_reference("weights", options.get("weights"), "image/efficientnet_lite tower")
        if options.get("weights") is None:
            return {}
        return {"height": 224, "width": 224, "channels": 3, "normalize": "efficientnet_lite"}

    def portable_config(self, spec):
        return {k: v for k, v in spec.items() if k != "weights"}

    def after_trainable_change(self):
        if self.freeze_batchnorm:
            for layer in self.backbone_layers:
                if isinstance(layer, layers.BatchNormalization):
                    layer.trainable = False

    def layer_groups(self):
        return [self.stem] + [block.layers() for block in self.blocks] + [self.head]

    def build(self, input_shape):
        super().build(input_shape)
        if self.weights_source is not None:
            from mmkeras.weights.efficientnet_lite import load_efficientnet_lite0

            load_efficientnet_lite0(self, self.weights_source)

    def get_config(self):
        return {**super().get_config(), "drop_connect_rate": self.drop_connect_rate,
                "stages": [list(stage) for stage in self.stages], "stem_filters": self.stem_filters,
                "head_filters": self.head_filters, "freeze_batchnorm": self.freeze_batchnorm}
