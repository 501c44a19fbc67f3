"""Low-rank multimodal fusion (LMF, Liu et al. 2018): tensor fusion factorised to rank r.

Reference: Z. Liu, Y. Shen, V. B. Lakshminarasimhan, P. P. Liang, A. Zadeh,
L.-P. Morency, "Efficient Low-rank Multimodal Fusion with Modality-Specific
Factors", ACL 2018 (Eq. 6): ``h = sum_r prod_m (W_m^(r) [z_m; 1])``.
"""

import keras
from keras import ops

from mmkeras.fusion.base import FUSIONS, Fusion


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/lmf")
class LowRankFusion(Fusion):
    """TFN's outer product of ``[z_m; 1]`` vectors followed by a linear map, computed
    without ever forming the ``prod_m (d_m + 1)``-wide tensor.

    The weight tensor of that linear map is constrained to rank ``r``: one factor
    ``W_m^(r)`` of shape ``[d_m + 1, dim]`` per modality and rank, so
    ``h = sum_r prod_m (W_m^(r) [z_m; 1])`` (elementwise product over modalities).
    Cost and parameters grow linearly in the number of modalities (TFN's grow
    exponentially). The appended 1 keeps every unimodal and bimodal term, as in
    TFN. Reads the pooled vectors: an absent modality enters as its learned
    missing embedding. The factors and their product stay float32 under mixed
    precision.

    Args:
        rank: int. Rank ``r`` of the factorisation (the paper finds 1 to 16 enough).
        dim: int. Output width.
        dropout: float. Dropout on the output.

    Example:
    ```python
    fused = LowRankFusion(num_modalities=3, rank=4, dim=64)([img_out, aud_out, txt_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, rank=4, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, dropout=dropout, **kwargs)
        if rank < 1:
            raise ValueError(f"fusion/lmf: rank must be a positive integer, got {rank!r}")
        self.rank = rank

    def build_parts(self, towers_shape):
        # All r factors of a modality in one [d_m + 1, r * dim] matrix: one matmul per modality.
        self.factors = [
            self.add_weight(name=f"factor{m}", shape=(shape["pooled"][-1] + 1, self.rank * self.dim),
                            initializer="glorot_normal", autocast=False)
            for m, shape in enumerate(towers_shape)
        ]

    def fuse(self, towers, present, training=None):
        # The product over modalities runs in float32 (factors are never autocast): under
        # mixed_float16 a product of M factors, and its loss-scaled gradient, overflow easily.
        product = None
        for factor, tower in zip(self.factors, towers):
            z = ops.cast(tower["pooled"], "float32")
            z = ops.concatenate([z, ops.ones_like(z[:, :1])], axis=-1)  # [B, d_m + 1]
            f = ops.reshape(ops.matmul(z, factor), (-1, self.rank, self.dim))
            product = f if product is None else product * f
        return ops.cast(ops.sum(product, axis=1), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}
