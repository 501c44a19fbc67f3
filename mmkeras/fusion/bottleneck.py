"""Attention bottleneck fusion (MBT, Nagrani et al. 2021).

Reference: A. Nagrani, S. Yang, A. Arnab, A. Jansen, C. Schmid, C. Sun,
"Attention Bottlenecks for Multimodal Fusion", NeurIPS 2021 (Sec. 3.2, Eq. 8-9).
"""

import keras
from keras import ops

from mmkeras.fusion.base import FUSIONS, TokenFusion, present_mean
from mmkeras.layers import MaskedMeanPooling, TransformerBlock


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/bottleneck")
class BottleneckFusion(TokenFusion):
    """Per-modality transformer streams that exchange information only through a few
    shared bottleneck tokens.

    Each tower sequence is projected to ``dim`` and goes through its own stack of
    ``num_layers`` transformer blocks (weights not shared across modalities).
    Layers before ``fusion_layer`` see only their own modality's tokens; from
    ``fusion_layer`` on, each modality's block attends over ``[its tokens;
    bottlenecks]`` and the modalities' updated bottlenecks are averaged (MBT Eq.
    8-9). Only *present* modalities enter that average, so an absent one
    influences nothing; when none is present the bottlenecks stay as they were.
    Each stream is mean-pooled over its valid tokens and read out by its own
    Dense layer; the read-outs are averaged over the present modalities (MBT
    averages per-modality classifier outputs).

    Args:
        dim: int. Width of the streams, the bottlenecks and the output.
        num_layers: int. Transformer blocks per modality.
        num_bottlenecks: int. Shared bottleneck tokens (MBT uses 4).
        fusion_layer: int. Index of the first layer that uses the bottlenecks
            (0: from the start; ``num_layers``: no exchange, i.e. late fusion).
        num_heads: int. Attention heads; must divide ``dim``.
        mlp_ratio: float. MLP width multiple inside the blocks.
        dropout: float. Dropout inside the blocks and on the output.

    Example:
    ```python
    fused = BottleneckFusion(num_modalities=2, dim=64, num_layers=2, num_bottlenecks=4)([img_out, aud_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, num_layers=2, num_bottlenecks=4, fusion_layer=0, num_heads=4,
                 mlp_ratio=4.0, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, num_layers=num_layers, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         dropout=dropout, **kwargs)
        if num_bottlenecks < 1:
            raise ValueError(f"fusion/bottleneck: num_bottlenecks must be >= 1, got {num_bottlenecks!r}")
        if not 0 <= fusion_layer <= num_layers:
            raise ValueError(f"fusion/bottleneck: fusion_layer={fusion_layer!r} must be in [0, num_layers="
                             f"{num_layers}]")
        self.num_bottlenecks = num_bottlenecks
        self.fusion_layer = fusion_layer
        self.blocks = self.per_layer_and_modality(
            lambda name: TransformerBlock(**self.block_options(), name=name), num_layers, "block")
        self.pool = MaskedMeanPooling(dtype=self.dtype_policy, name="pool")
        self.readouts = self.per_modality(dim, name="readout")

    def build_parts(self, towers_shape):
        # Unit scale, like the tokens they join: LayerNorm of a tiny-variance vector multiplies its
        # gradient by 1/std, which overflowed float16 under loss scaling with std 0.02.
        self.bottlenecks = self.add_weight(name="bottlenecks", shape=(self.num_bottlenecks, self.dim),
                                           initializer=keras.initializers.RandomNormal(stddev=1.0))
        shapes = self.build_projections(towers_shape)
        for layer in range(self.num_layers):
            extra = self.num_bottlenecks if layer >= self.fusion_layer else 0
            for m, (batch, length, dim) in enumerate(shapes):
                tokens = None if length is None else length + extra
                self.blocks[layer * self.num_modalities + m].build((batch, tokens, dim))
        self.pool.build(shapes[0])
        for readout in self.readouts:
            readout.build((None, self.dim))

    def fuse(self, towers, present, training=None):
        streams, masks = self.project(towers)
        dtype = streams[0].dtype
        batch = ops.shape(streams[0])[0]
        shared = ops.broadcast_to(ops.cast(self.bottlenecks, dtype)[None], (batch, self.num_bottlenecks, self.dim))
        always = ops.ones((batch, self.num_bottlenecks), dtype="bool")
        for layer in range(self.num_layers):
            blocks = self.blocks[layer * self.num_modalities:(layer + 1) * self.num_modalities]
            if layer < self.fusion_layer:
                streams = [block(s, mask=k, training=training) for block, s, k in zip(blocks, streams, masks)]
                continue
            updated = []
            for m, block in enumerate(blocks):
                length = ops.shape(streams[m])[1]
                joint = block(ops.concatenate([streams[m], shared], axis=1),
                              mask=ops.concatenate([ops.cast(masks[m], "bool"), always], axis=1), training=training)
                streams[m] = joint[:, :length]
                updated.append(joint[:, length:])
            any_present = ops.reshape(ops.any(ops.cast(present, "bool"), axis=1), (-1, 1, 1))
            shared = ops.where(any_present, present_mean(ops.stack(updated, axis=1), present), shared)
        read = [r(self.pool(s, mask=k)) for r, s, k in zip(self.readouts, streams, masks)]
        return present_mean(ops.stack(read, axis=1), present)

    def get_config(self):
        return {**super().get_config(), "num_bottlenecks": self.num_bottlenecks, "fusion_layer": self.fusion_layer}
