"""Gated multimodal unit (Arevalo et al. 2017), generalised to M modalities."""

import keras
from keras import layers, ops

from mmkeras.fusion.base import FUSIONS, Fusion, build_per_modality, concat_width, masked_softmax, stack_projected


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/gated")
class GatedFusion(Fusion):
    """``h_m = tanh(W_m x_m)``; gates ``z = softmax_m(W_z [x_1..x_M])`` over the
    present modalities, one gate per modality **and feature** (``[B, M, D]``, as
    the GMU paper's ``z`` is a vector); output ``sum_m z_m * h_m``.

    Per-feature gates matter: with one scalar gate per modality the faster
    learning tower (e.g. MNIST images) takes the whole gate early, the other
    tower stops receiving gradient and the block collapses to one modality.

    Example:
    ```python
    fused = GatedFusion(num_modalities=3, dim=64)([img_out, aud_out, txt_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, dropout=dropout, **kwargs)
        self.hidden = self.per_modality(dim, activation="tanh", name="hidden")
        self.gate = layers.Dense(num_modalities * dim, dtype=self.dtype_policy, name="gate")

    def build_parts(self, towers_shape):
        build_per_modality(self.hidden, towers_shape)
        self.gate.build((None, concat_width(towers_shape)))

    def fuse(self, towers, present, training=None):
        hidden = stack_projected(self.hidden, towers)  # [B, M, D]
        logits = self.gate(ops.concatenate([t["pooled"] for t in towers], axis=-1))
        logits = ops.reshape(logits, (-1, self.num_modalities, self.dim))  # [B, M, D]
        weights = masked_softmax(logits, ops.expand_dims(present, -1), axis=1)
        return ops.sum(hidden * weights, axis=1)
