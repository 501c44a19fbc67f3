"""Co-attention fusion (ViLBERT, Lu et al. 2019): each modality's tokens attend to the others'.

Reference: J. Lu, D. Batra, D. Parikh, S. Lee, "ViLBERT: Pretraining Task-Agnostic
Visiolinguistic Representations for Vision-and-Language Tasks", NeurIPS 2019 (the
co-attentional transformer layer, Fig. 2b), generalised from two streams to M.
"""

import keras
from keras import layers, ops

from mmkeras.fusion.base import FUSIONS, TokenFusion, joined_length
from mmkeras.layers import CrossAttentionBlock, MaskedMeanPooling, TransformerBlock


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/coattention")
class CoAttentionFusion(TokenFusion):
    """One stream per modality, joined by co-attentional layers, pooled per modality.

    Each tower sequence is projected to ``dim``. Every layer then runs, for each
    modality at once, a cross-attention block whose queries are that modality's
    tokens and whose keys/values are the tokens of every *other* modality (their
    masks concatenated), followed by a self-attention block over its own tokens
    (ViLBERT's Co-TRM then TRM). Each stream is mean-pooled over its valid tokens
    (zeros for an absent modality, whose mask MissingModality cleared), the
    pooled vectors are concatenated and a ReLU Dense layer mixes them to ``dim``.
    Absent modalities provide no keys, so they change nothing.

    Args:
        dim: int. Width of every stream and of the output.
        num_layers: int. Co-attentional layers (each: cross-attention + self-attention per modality).
        num_heads: int. Attention heads; must divide ``dim``.
        mlp_ratio: float. MLP width multiple inside the blocks.
        dropout: float. Dropout inside the blocks and on the output.

    Example:
    ```python
    fused = CoAttentionFusion(num_modalities=2, dim=64, num_layers=1)([img_out, aud_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, num_layers=1, num_heads=4, mlp_ratio=4.0, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, num_layers=num_layers, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         dropout=dropout, **kwargs)
        self.require_modalities(2, "each modality attends to the others")
        self.co_blocks = self.per_layer_and_modality(
            lambda name: CrossAttentionBlock(**self.block_options(), name=name), num_layers, "co")
        self.self_blocks = self.per_layer_and_modality(
            lambda name: TransformerBlock(**self.block_options(), name=name), num_layers, "self")
        self.pool = MaskedMeanPooling(dtype=self.dtype_policy, name="pool")
        self.mix = layers.Dense(dim, activation="relu", dtype=self.dtype_policy, name="mix")

    def build_parts(self, towers_shape):
        shapes = self.build_projections(towers_shape)
        for layer in range(self.num_layers):
            for m, shape in enumerate(shapes):
                context = (None, joined_length([s for j, s in enumerate(shapes) if j != m]), self.dim)
                self.co_blocks[layer * self.num_modalities + m].build(
                    x_shape=shape, context_shape=context, context_mask_shape=context[:2])
                self.self_blocks[layer * self.num_modalities + m].build(shape)
        self.pool.build(shapes[0])
        self.mix.build((None, self.num_modalities * self.dim))

    def fuse(self, towers, present, training=None):
        streams, masks = self.project(towers)
        for layer in range(self.num_layers):
            blocks = range(layer * self.num_modalities, (layer + 1) * self.num_modalities)
            attended = []
            for m, index in enumerate(blocks):  # every stream reads the others' tokens of the previous layer
                context = ops.concatenate([s for j, s in enumerate(streams) if j != m], axis=1)
                context_mask = ops.concatenate([k for j, k in enumerate(masks) if j != m], axis=1)
                attended.append(self.co_blocks[index](streams[m], context, context_mask=context_mask,
                                                      training=training))
            streams = [self.self_blocks[index](a, mask=k, training=training)
                       for index, a, k in zip(blocks, attended, masks)]
        pooled = [self.pool(s, mask=k) for s, k in zip(streams, masks)]
        return self.mix(ops.concatenate(pooled, axis=-1))
