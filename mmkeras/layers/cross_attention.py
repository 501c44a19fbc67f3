"""Pre-LayerNorm cross-attention block shared by the co-attention, MulT and Perceiver fusion blocks.

Queries come from one token sequence, keys and values from another (the
"context") under a key mask. It is the block of ViLBERT's co-attentional layer
(Lu et al. 2019) and of MulT's crossmodal transformer (Tsai et al. 2019):
``x + MHA(LN(x), LN(context))`` then ``x + MLP(LN(x))``.
"""

import keras
from keras import layers, ops

from mmkeras.layers.shapes import shapes_by_name
from mmkeras.layers.transformer import PreNormBlock


@keras.saving.register_keras_serializable(package="mmkeras")
class CrossAttentionBlock(PreNormBlock):
    """One pre-LN cross-attention block: queries from ``x``, keys/values from ``context``.

    Attention uses one query projection, one fused key/value projection and
    ``keras.ops.dot_product_attention``. Where a row of ``context_mask`` has no
    valid key at all (the context modality is absent), the attention update is
    zero, so ``x`` only goes through the MLP and nothing of the masked context
    reaches the output (a softmax over nothing but masked keys would otherwise
    spread uniformly over them).

    Args:
        num_heads: int. Attention heads; must divide the width of ``x``.
        mlp_ratio: float. MLP hidden width as a multiple of the width of ``x``.
        dropout: float. Dropout after attention and MLP, training only.
        epsilon: float. LayerNorm epsilon.

    Example:
    ```python
    block = CrossAttentionBlock(num_heads=4)
    y = block(keras.ops.ones((2, 10, 64)), keras.ops.ones((2, 7, 32)),
              context_mask=keras.ops.ones((2, 7), "bool"))  # [2, 10, 64]
    ```
    """

    def __init__(self, num_heads=4, mlp_ratio=4.0, dropout=0.0, epsilon=1e-6, **kwargs):
        super().__init__(num_heads, mlp_ratio, dropout, epsilon, **kwargs)
        # The context mask arrives as an argument; Keras masks are not used.
        self.supports_masking = False

    def build(self, x_shape=None, context_shape=None, context_mask_shape=None, **call_named):
        x_shape, context_shape, _ = shapes_by_name(call_named, x_shape=x_shape, context_shape=context_shape,
                                                   context_mask_shape=context_mask_shape)
        x_shape, context_shape = tuple(x_shape), tuple(context_shape)
        dim = x_shape[-1]
        self.head_dim = self.head_width(dim)
        policy = self.dtype_policy
        self.ln_query = layers.LayerNormalization(epsilon=self.epsilon, dtype=policy, name="ln_query")
        self.ln_context = layers.LayerNormalization(epsilon=self.epsilon, dtype=policy, name="ln_context")
        self.query = layers.Dense(dim, dtype=policy, name="query")
        self.key_value = layers.Dense(2 * dim, dtype=policy, name="key_value")
        self.proj = layers.Dense(dim, dtype=policy, name="proj")
        for sub, shape in ((self.ln_query, x_shape), (self.ln_context, context_shape), (self.query, x_shape),
                           (self.key_value, context_shape), (self.proj, x_shape)):
            sub.build(shape)
        self.build_mlp(x_shape)

    def call(self, x, context, context_mask=None, training=None):
        batch, length, context_length = ops.shape(x)[0], ops.shape(x)[1], ops.shape(context)[1]
        q = ops.reshape(self.query(self.ln_query(x)), (batch, length, self.num_heads, self.head_dim))
        k, v = ops.split(self.key_value(self.ln_context(context)), 2, axis=-1)
        shape = (batch, context_length, self.num_heads, self.head_dim)
        k, v = ops.reshape(k, shape), ops.reshape(v, shape)
        attn_mask = None
        if context_mask is not None:
            context_mask = ops.cast(context_mask, "bool")
            attn_mask = ops.expand_dims(ops.expand_dims(context_mask, 1), 1)  # [B, 1, 1, S]
        h = ops.dot_product_attention(q, k, v, mask=attn_mask)  # [B, T, H, d]
        if context_mask is not None:
            any_key = ops.cast(ops.any(context_mask, axis=1), h.dtype)
            h = h * ops.reshape(any_key, (-1, 1, 1, 1))
        return self.mlp_residual(x, self.proj(ops.reshape(h, (batch, length, -1))), training)

    def compute_mask(self, *args, **kwargs):
        return None

    def compute_output_shape(self, x_shape, context_shape=None, context_mask_shape=None):
        return tuple(x_shape)
