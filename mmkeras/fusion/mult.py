"""Cross-modal transformer fusion (MulT, Tsai et al. 2019).

Reference: Y.-H. H. Tsai, S. Bai, P. P. Liang, J. Z. Kolter, L.-P. Morency,
R. Salakhutdinov, "Multimodal Transformer for Unaligned Multimodal Language
Sequences", ACL 2019 (Sec. 3.2-3.3, Fig. 2-3).
"""

import keras
from keras import layers, ops

from mmkeras.fusion.base import FUSIONS, TokenFusion
from mmkeras.layers import CrossAttentionBlock, MaskedMeanPooling, TransformerEncoder


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/mult")
class MulTFusion(TokenFusion):
    """Directional cross-modal transformers into every target modality, then self-attention.

    Each tower sequence is projected to ``dim`` (MulT's temporal 1x1 convolution).
    For every ordered pair (source ``a``, target ``b``), ``a != b``, a crossmodal
    transformer of ``num_layers`` blocks updates the target's tokens with
    queries from the target and keys/values from the *projected* source
    sequence (MulT's ``CM_{a->b}``: the source stays at its low-level features in
    every block). Per target, the ``M - 1`` results are concatenated on the
    feature axis (width ``(M - 1) * dim``), a self-attention transformer of
    ``self_layers`` blocks runs over them, and its valid tokens are mean-pooled
    (MulT takes the last time step; towers here pad at the end, so the mean over
    valid steps stands in for it). The targets' vectors are concatenated and a
    ReLU Dense layer maps them to ``dim``. An absent source supplies no keys (its
    cross-attention update is zero) and an absent target pools to zeros.

    Args:
        dim: int. Width of each crossmodal stream; the output width.
        num_layers: int. Blocks per crossmodal transformer (MulT's ``D``).
        self_layers: int. Self-attention blocks per target after the crossmodal ones.
        num_heads: int. Attention heads; must divide ``dim``.
        mlp_ratio: float. MLP width multiple inside the blocks.
        dropout: float. Dropout inside the blocks and on the output.

    Example:
    ```python
    fused = MulTFusion(num_modalities=3, dim=32, num_layers=1)([img_out, aud_out, txt_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, num_layers=1, self_layers=1, num_heads=4, mlp_ratio=4.0,
                 dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, num_layers=num_layers, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         dropout=dropout, **kwargs)
        self.require_modalities(2, "each target modality attends to the other ones")
        self.self_layers = self_layers
        self.pairs = [(a, b) for b in range(num_modalities) for a in range(num_modalities) if a != b]
        self.cross_blocks = [CrossAttentionBlock(**self.block_options(), name=f"cross{a}to{b}_{i}")
                             for a, b in self.pairs for i in range(num_layers)]
        self.self_encoders = [
            TransformerEncoder(self_layers, num_heads, mlp_ratio, dropout, final_norm=True,
                               dtype=self.dtype_policy, name=f"self{b}")
            for b in range(num_modalities)
        ]
        self.pool = MaskedMeanPooling(dtype=self.dtype_policy, name="pool")
        self.mix = layers.Dense(dim, activation="relu", dtype=self.dtype_policy, name="mix")

    def _blocks(self, a, b):
        start = self.pairs.index((a, b)) * self.num_layers
        return self.cross_blocks[start:start + self.num_layers]

    def build_parts(self, towers_shape):
        shapes = self.build_projections(towers_shape)
        for a, b in self.pairs:
            for block in self._blocks(a, b):
                block.build(x_shape=shapes[b], context_shape=shapes[a], context_mask_shape=shapes[a][:2])
        width = (self.num_modalities - 1) * self.dim
        for b, encoder in enumerate(self.self_encoders):
            encoder.build(shapes[b][:2] + (width,))
        self.pool.build(shapes[0][:2] + (width,))
        self.mix.build((None, self.num_modalities * width))

    def fuse(self, towers, present, training=None):
        sources, masks = self.project(towers)
        pooled = []
        for b, encoder in enumerate(self.self_encoders):
            streams = []
            for a in range(self.num_modalities):
                if a == b:
                    continue
                z = sources[b]
                for block in self._blocks(a, b):
                    z = block(z, sources[a], context_mask=masks[a], training=training)
                streams.append(z)
            h = encoder(ops.concatenate(streams, axis=-1), mask=masks[b], training=training)
            pooled.append(self.pool(h, mask=masks[b]))
        return self.mix(ops.concatenate(pooled, axis=-1))

    def get_config(self):
        return {**super().get_config(), "self_layers": self.self_layers}
