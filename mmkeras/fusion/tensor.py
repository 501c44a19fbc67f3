"""Tensor fusion (Zadeh et al. 2017): outer product of ``[h_m; 1]`` vectors."""

import keras
from keras import layers, ops

from mmkeras.fusion.base import FUSIONS, Fusion, build_per_modality


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/tensor")
class TensorFusion(Fusion):
    """Projects each modality to ``rank`` dims, appends a constant 1 and takes the
    outer product across modalities, so unimodal, bimodal and trimodal interactions
    are all explicit; a Dense layer maps the ``(rank+1)^M`` features to ``dim``.

    Args:
        rank: int. Per-modality width before the outer product (keep it small:
            the product has ``(rank + 1) ** M`` features).
        dim: int. Output width.
        dropout: float. Dropout on the output.

    Example:
    ```python
    fused = TensorFusion(num_modalities=3, rank=8, dim=64)([img_out, aud_out, txt_out], present)
    ```
    """

    def __init__(self, num_modalities, rank=16, dim=128, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, dropout=dropout, **kwargs)
        self.rank = rank
        self.reducers = self.per_modality(rank, activation="tanh", name="reduce")
        self.mix = layers.Dense(dim, activation="relu", dtype=self.dtype_policy, name="mix")

    def build_parts(self, towers_shape):
        build_per_modality(self.reducers, towers_shape)
        self.mix.build((None, (self.rank + 1) ** self.num_modalities))

    def fuse(self, towers, present, training=None):
        product = None
        for reducer, tower in zip(self.reducers, towers):
            h = reducer(tower["pooled"])
            h = ops.concatenate([h, ops.ones_like(h[:, :1])], axis=-1)  # [B, r+1]
            if product is None:
                product = h
            else:
                outer = ops.expand_dims(product, -1) * ops.expand_dims(h, 1)
                product = ops.reshape(outer, (-1, product.shape[-1] * h.shape[-1]))
        return self.mix(product)

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}
