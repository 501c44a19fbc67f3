"""Additive (Bahdanau-style) attention over the modality vectors."""

import keras
from keras import layers, ops

from mmkeras.fusion.base import FUSIONS, Fusion, masked_softmax, stack_projected


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/attention")
class AttentionFusion(Fusion):
    """Scores each projected modality vector with ``v^T tanh(W p_m)``, softmaxes
    over the present modalities and returns the weighted sum.

    Example:
    ```python
    fused = AttentionFusion(num_modalities=2, dim=64)([img_out, aud_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, dropout=dropout, **kwargs)
        self.values = self.per_modality(dim, name="value")
        self.score_hidden = layers.Dense(dim, activation="tanh", dtype=self.dtype_policy, name="score_hidden")
        self.score = layers.Dense(1, use_bias=False, dtype=self.dtype_policy, name="score")

    def fuse(self, towers, present, training=None):
        values = stack_projected(self.values, towers)  # [B, M, D]
        scores = ops.squeeze(self.score(self.score_hidden(values)), -1)  # [B, M]
        weights = masked_softmax(scores, present)
        return ops.sum(values * ops.expand_dims(weights, -1), axis=1)
