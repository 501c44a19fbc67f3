"""Additive (Bahdanau-style) attention over the modality vectors."""

import keras
from keras import layers, ops

from mmkeras.fusion.base import FUSIONS, Fusion, build_per_modality, masked_softmax, stack_projected
from mmkeras.layers.shapes import chain


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/attention")
class AttentionFusion(Fusion):
    """Multi-head additive attention over the modality vectors.

    Each head scores every projected modality vector with ``v_h^T tanh(W p_m)``,
    softmaxes over the present modalities and takes the weighted sum of its
    ``dim / num_heads`` slice of the values; the heads are concatenated.

    Several heads keep the block from collapsing onto one modality: with a
    single softmax, the tower that learns fastest takes all the weight early
    and the others stop receiving gradient.

    Args:
        num_heads: int. Number of heads; must divide ``dim``.

    Example:
    ```python
    fused = AttentionFusion(num_modalities=2, dim=64, num_heads=8)([img_out, aud_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, dropout=0.0, num_heads=8, **kwargs):
        super().__init__(num_modalities, dim=dim, dropout=dropout, **kwargs)
        self.check_heads(num_heads)
        self.num_heads = num_heads
        self.values = self.per_modality(dim, name="value")
        self.score_hidden = layers.Dense(dim, activation="tanh", dtype=self.dtype_policy, name="score_hidden")
        self.score = layers.Dense(num_heads, use_bias=False, dtype=self.dtype_policy, name="score")

    def build_parts(self, towers_shape):
        build_per_modality(self.values, towers_shape)
        chain([self.score_hidden, self.score], (None, self.num_modalities, self.dim), build=True)

    def fuse(self, towers, present, training=None):
        values = stack_projected(self.values, towers)  # [B, M, D]
        scores = self.score(self.score_hidden(values))  # [B, M, H]
        weights = masked_softmax(scores, ops.expand_dims(present, -1), axis=1)
        heads = ops.reshape(values, (-1, self.num_modalities, self.num_heads, self.dim // self.num_heads))
        fused = ops.sum(heads * ops.expand_dims(weights, -1), axis=1)  # [B, H, D / H]
        return ops.reshape(fused, (-1, self.dim))

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}
