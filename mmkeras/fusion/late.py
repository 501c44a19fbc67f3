"""Learned late fusion: each modality votes on its own, the votes are summed with learned weights."""

import keras
from keras import ops

from mmkeras.fusion.base import FUSIONS, Fusion, build_per_modality, stack_projected


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/late")
class LateFusion(Fusion):
    """``sum_m present_m * exp(a_m) * W_m x_m``: a linear vote per modality, weighted by a learned positive
    scalar per modality; an absent modality's vote is left out.

    Nothing mixes the modalities before the head, and the classification head is
    linear before its softmax, so the logits are a weighted sum of per-modality
    logits (late fusion of scores). One modality cannot gate or rescale what the
    other says, so a modality that misleads on shifted data (audio from a new
    speaker) only adds its evidence; with ``modality_dropout`` each vote is also
    trained to classify alone.

    Args:
        dim: int. Width of each vote (and of the output).
        dropout: float. Dropout on the output.

    Example:
    ```python
    fused = LateFusion(num_modalities=2, dim=64)([img_out, aud_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, dropout=dropout, **kwargs)
        self.votes = self.per_modality(dim, name="vote")

    def build_parts(self, towers_shape):
        build_per_modality(self.votes, towers_shape)
        # log-weights, 0 = weight 1: every modality starts with an equal say
        self.log_weights = self.add_weight(name="log_weights", shape=(self.num_modalities,), initializer="zeros")

    def fuse(self, towers, present, training=None):
        votes = stack_projected(self.votes, towers)  # [B, M, D]
        weights = ops.cast(present, votes.dtype) * ops.cast(ops.exp(self.log_weights), votes.dtype)  # [B, M]
        return ops.sum(votes * ops.expand_dims(weights, -1), axis=1)
