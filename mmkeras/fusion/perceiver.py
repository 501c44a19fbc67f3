"""Latent-bottleneck fusion in the style of the Perceiver (Jaegle et al. 2021).

Reference: A. Jaegle, F. Gimeno, A. Brock, A. Zisserman, O. Vinyals, J. Carreira,
"Perceiver: General Perception with Iterative Attention", ICML 2021 (Sec. 2,
Fig. 1): a small learned latent array cross-attends to the inputs, then
self-attends; repeated.
"""

import keras
from keras import ops

from mmkeras.fusion.base import FUSIONS, TokenFusion, joined_length
from mmkeras.layers import CrossAttentionBlock, TransformerEncoder


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/perceiver")
class PerceiverFusion(TokenFusion):
    """A learned latent array reads every modality's tokens through cross-attention.

    Each tower sequence is projected to ``dim`` and tagged with a learned
    modality embedding; the tokens of all modalities are concatenated (with
    their masks). ``num_layers`` times, the ``num_latents`` latents cross-attend
    to those tokens and then run ``self_layers`` self-attention blocks among
    themselves; the output is the mean of the latents. Cost is linear in the
    number of tokens (the latents are the only queries). Absent modalities'
    tokens are masked keys; with every modality absent the latents see nothing
    and the output is a constant.

    Args:
        dim: int. Width of the latents, the projected tokens and the output.
        num_latents: int. Size of the latent array.
        num_layers: int. Cross-attention + latent self-attention rounds (weights not shared).
        self_layers: int. Latent self-attention blocks per round.
        num_heads: int. Attention heads; must divide ``dim``.
        mlp_ratio: float. MLP width multiple inside the blocks.
        dropout: float. Dropout inside the blocks and on the output.

    Example:
    ```python
    fused = PerceiverFusion(num_modalities=3, dim=64, num_latents=8)([img_out, aud_out, txt_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, num_latents=8, num_layers=1, self_layers=1, num_heads=4,
                 mlp_ratio=4.0, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, num_layers=num_layers, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         dropout=dropout, **kwargs)
        if num_latents < 1:
            raise ValueError(f"fusion/perceiver: num_latents must be >= 1, got {num_latents!r}")
        self.num_latents = num_latents
        self.self_layers = self_layers
        self.cross_blocks = [CrossAttentionBlock(**self.block_options(), name=f"cross{i}") for i in range(num_layers)]
        self.latent_encoders = [
            TransformerEncoder(self_layers, num_heads, mlp_ratio, dropout, final_norm=i == num_layers - 1,
                               dtype=self.dtype_policy, name=f"latent{i}")
            for i in range(num_layers)
        ]

    def build_parts(self, towers_shape):
        # Unit scale, like the tokens they join: LayerNorm of a tiny-variance vector multiplies its
        # gradient by 1/std, which overflowed float16 under loss scaling with std 0.02.
        self.latents = self.add_weight(name="latents", shape=(self.num_latents, self.dim),
                                       initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.type_embedding = self.add_weight(name="type_embedding", shape=(self.num_modalities, self.dim),
                                              initializer="random_normal")
        tokens = (None, joined_length(self.build_projections(towers_shape)), self.dim)
        latents = (None, self.num_latents, self.dim)
        for cross, encoder in zip(self.cross_blocks, self.latent_encoders):
            cross.build(x_shape=latents, context_shape=tokens, context_mask_shape=tokens[:2])
            encoder.build(latents)

    def fuse(self, towers, present, training=None):
        sequences, masks = self.project(towers)
        dtype = sequences[0].dtype
        tokens = ops.concatenate(
            [s + ops.cast(self.type_embedding[m], dtype) for m, s in enumerate(sequences)], axis=1)
        mask = ops.concatenate(masks, axis=1)
        batch = ops.shape(tokens)[0]
        z = ops.broadcast_to(ops.cast(self.latents, dtype)[None], (batch, self.num_latents, self.dim))
        for cross, encoder in zip(self.cross_blocks, self.latent_encoders):
            z = encoder(cross(z, tokens, context_mask=mask, training=training), training=training)
        return ops.mean(z, axis=1)

    def get_config(self):
        return {**super().get_config(), "num_latents": self.num_latents, "self_layers": self.self_layers}
