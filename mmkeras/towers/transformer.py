"""Transformer towers: ViT-style patches for images, token embeddings for text,
a strided 1-D conv stem over log-mel frames for audio. They share the encoder and
differ only in the stem that turns features into a ``[B, T, D]`` sequence.
"""

import keras
from keras import layers, ops

from mmkeras.layers import PositionEmbedding, TransformerEncoder
from mmkeras.layers.shapes import chain, downsample_mask
from mmkeras.towers.base import TOWERS, Tower, combine_masks


class TransformerTower(Tower):
    """Stem -> learned positions -> pre-LN transformer encoder.

    Args:
        dim: int. Model width.
        num_layers: int. Transformer blocks.
        num_heads: int. Attention heads.
        mlp_ratio: float. MLP width multiple.
        dropout: float. Dropout inside the blocks.
        final_norm: bool. LayerNorm after the last block.
    """

    def __init__(self, dim=128, num_layers=2, num_heads=4, mlp_ratio=4.0, dropout=0.0, final_norm=True, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        self.num_layers = num_layers
        self.limit_layers("num_layers", 8 * int(num_layers))
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.final_norm = final_norm
        self.position = PositionEmbedding(dtype=self.dtype_policy, name="position")
        self.encoder = TransformerEncoder(
            num_layers, num_heads, mlp_ratio, dropout, final_norm, dtype=self.dtype_policy, name="encoder"
        )

    def stem(self, x, mask=None):
        """Returns ``(sequence [B, T, dim], mask or None)``; ``mask`` is the input's Keras mask."""
        raise NotImplementedError

    def stem_shape(self, input_shape, build=False):
        """Returns the ``[B, T, dim]`` shape the stem gives; with ``build``, builds it."""
        raise NotImplementedError

    def encode(self, x, mask=None, training=None):
        sequence, mask = self.stem(x, mask=mask)
        sequence = self.position(sequence)
        return self.encoder(sequence, mask=mask, training=training), mask

    def encode_shape(self, input_shape, build=False):
        return chain([self.position, self.encoder], self.stem_shape(input_shape, build), build)

    def get_config(self):
        return {
            **super().get_config(),
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "final_norm": self.final_norm,
        }


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("image/vit")
class ImageViT(TransformerTower):
    """ViT-style image tower: non-overlapping patches embedded by a strided conv.

    Args:
        patch_size: int. Patch side in pixels.
        **kwargs: see :class:`TransformerTower`.

    Example:
    ```python
    tower = ImageViT(patch_size=8, dim=64, num_layers=1)
    out = tower(keras.ops.zeros((2, 32, 32, 3)))  # out["sequence"]: [2, 16, 64]
    ```
    """

    def __init__(self, patch_size=8, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size
        self.patch = layers.Conv2D(self.dim, patch_size, strides=patch_size, dtype=self.dtype_policy, name="patch")

    accepts_mask = False

    def stem(self, x, mask=None):
        x = self.patch(x)
        return ops.reshape(x, (-1, x.shape[1] * x.shape[2], self.dim)), None

    def stem_shape(self, input_shape, build=False):
        b, h, w, d = chain([self.patch], input_shape, build)
        return (b, h * w, d)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("text/transformer")
class TextTransformer(TransformerTower):
    """Transformer text encoder over token ids (0 = padding).

    Args:
        vocab_size: int. Embedding rows; must cover the tokenizer's ids.
        mask_padding: bool. Keep padding tokens out of attention and pooling.
        **kwargs: see :class:`TransformerTower`.

    Example:
    ```python
    tower = TextTransformer(vocab_size=1000, dim=64, num_layers=1)
    out = tower(keras.ops.array([[5, 9, 0, 0]]))
    ```
    """

    def __init__(self, vocab_size=20000, mask_padding=True, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.mask_padding = mask_padding
        self.embedding = layers.Embedding(vocab_size, self.dim, dtype=self.dtype_policy, name="embedding")

    def stem(self, x, mask=None):
        if self.mask_padding:
            mask = combine_masks(ops.not_equal(x, 0), mask)
        return self.embedding(x), mask

    def stem_shape(self, input_shape, build=False):
        return chain([self.embedding], input_shape, build)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "mask_padding": self.mask_padding}


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("audio/transformer")
class AudioTransformer(TransformerTower):
    """Audio transformer: a stride-2 Conv1D stem over log-mel frames, then blocks.

    Args:
        stem_kernel: int. Conv1D kernel size along time.
        stem_stride: int. Conv1D stride along time.
        **kwargs: see :class:`TransformerTower`.

    Example:
    ```python
    tower = AudioTransformer(dim=64, num_layers=1)
    out = tower(keras.ops.zeros((2, 20, 16)))  # out["sequence"]: [2, 10, 64]
    ```
    """

    def __init__(self, stem_kernel=3, stem_stride=2, **kwargs):
        super().__init__(**kwargs)
        self.stem_kernel = stem_kernel
        self.stem_stride = stem_stride
        self.conv = layers.Conv1D(
            self.dim, stem_kernel, strides=stem_stride, padding="same", activation="gelu",
            dtype=self.dtype_policy, name="stem",
        )

    def stem(self, x, mask=None):
        return self.conv(x), None if mask is None else downsample_mask(mask, self.stem_stride)

    def stem_shape(self, input_shape, build=False):
        return chain([self.conv], input_shape, build)

    def get_config(self):
        return {**super().get_config(), "stem_kernel": self.stem_kernel, "stem_stride": self.stem_stride}
