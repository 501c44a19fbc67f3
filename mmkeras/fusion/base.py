"""The fusion contract and registry.

A fusion block takes the list of tower outputs (``{"sequence", "mask", "pooled"}``
per modality, in the model's modality order) and ``present`` ``[B, M]`` (1 where
the modality is there) and returns one fused vector ``[B, D]``. Absent modalities
must not influence the result except through their learned missing embedding.
"""

import keras
from keras import layers, ops

from mmkeras.layers.shapes import shapes_by_name
from mmkeras.registry import Registry
from mmkeras.utils.safe_loading import budgeted_build

FUSIONS = Registry("fusion block")


class Fusion(keras.layers.Layer):
    """Base class of fusion blocks.

    Args:
        num_modalities: int. How many tower outputs the block receives.
        dim: int. Width of the fused vector.
        dropout: float. Dropout on the fused vector (training only).
    """

    uses_pooled = True  # False for blocks that read only sequences and masks

    def __init__(self, num_modalities, dim=128, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_modalities = num_modalities
        # Masks travel explicitly in the tower output dicts (and ``present``); Keras masks are not used.
        self.supports_masking = False
        self.dim = dim
        self.dropout = dropout
        self.drop = layers.Dropout(dropout, dtype=self.dtype_policy)

    def per_modality(self, units, activation=None, name="proj"):
        """One Dense per modality (call from ``__init__``)."""
        return [
            layers.Dense(units, activation=activation, dtype=self.dtype_policy, name=f"{name}{i}")
            for i in range(self.num_modalities)
        ]

    def per_layer_and_modality(self, make, num_layers, name):
        """``make(name)`` for every (layer, modality), flat: index ``layer * M + modality`` (call from ``__init__``)."""
        return [make(f"{name}{layer}_{m}") for layer in range(num_layers) for m in range(self.num_modalities)]

    def require_modalities(self, minimum, why):
        """Raises a ValueError naming the block if it gets fewer than ``minimum`` modalities."""
        if self.num_modalities < minimum:
            raise ValueError(f"{self.registry_key} needs at least {minimum} modalities ({why}), "
                             f"got {self.num_modalities}")

    def check_heads(self, num_heads):
        """Raises a ValueError naming the block unless ``num_heads`` divides ``dim``."""
        if num_heads < 1 or self.dim % num_heads:
            raise ValueError(f"{self.registry_key}: num_heads={num_heads} must be a positive divisor of "
                             f"dim={self.dim}")

    def compute_mask(self, *args, **kwargs):
        return None

    def build(self, towers_shape=None, present_shape=None, **call_named):
        towers_shape, _ = shapes_by_name(call_named, towers_shape=towers_shape, present_shape=present_shape)
        if len(towers_shape) != self.num_modalities:
            raise ValueError(f"{type(self).__name__} was built for {self.num_modalities} modalities but "
                             f"received {len(towers_shape)} tower outputs")
        # Under safe-mode loading (a block in any Keras model), nothing is allocated over the budget.
        with budgeted_build(f"{self.name!r} fusion ({type(self).__name__})", self.get_config()) as budget:
            self.build_parts([{k: tuple(v) for k, v in t.items()} for t in towers_shape])
            budget.measure(self)

    def build_parts(self, towers_shape):
        """Builds the block's sub-layers from the tower output shapes (``sequence``/``mask``/``pooled``)."""
        raise NotImplementedError

    def compute_output_shape(self, towers_shape, present_shape=None):
        return (towers_shape[0]["pooled"][0], self.dim)

    def fuse(self, towers, present, training=None):
        raise NotImplementedError

    def call(self, towers, present, training=None):
        return self.drop(self.fuse(towers, present, training=training), training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "num_modalities": self.num_modalities,
            "dim": self.dim,
            "dropout": self.dropout,
        }


class TokenFusion(Fusion):
    """Base of blocks that read token sequences and masks (not ``pooled``) with attention blocks.

    Creates one projection of each tower sequence to ``dim`` and keeps the options
    every attention-based block shares.

    Args:
        num_layers: int. Layers of the block (what a layer is depends on the block).
        num_heads: int. Attention heads; must divide ``dim``.
        mlp_ratio: float. MLP width multiple inside the attention blocks.
        dropout: float. Dropout inside the attention blocks and on the output.

    Example:
    ```python
    class MeanTokens(TokenFusion):  # a toy block: mean of every valid projected token
        def build_parts(self, towers_shape):
            self.build_projections(towers_shape)

        def fuse(self, towers, present, training=None):
            sequences, masks = self.project(towers)
            tokens, mask = ops.concatenate(sequences, axis=1), ops.concatenate(masks, axis=1)
            weights = ops.expand_dims(ops.cast(mask, tokens.dtype), -1)
            return ops.sum(tokens * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
    ```
    """

    uses_pooled = False

    def __init__(self, num_modalities, dim=128, num_layers=1, num_heads=4, mlp_ratio=4.0, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, dropout=dropout, **kwargs)
        self.check_heads(num_heads)
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.projections = self.per_modality(dim, name="proj")

    def block_options(self):
        """Constructor arguments of the block's ``TransformerBlock``/``CrossAttentionBlock`` layers."""
        return {"num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio, "dropout": self.dropout,
                "dtype": self.dtype_policy}

    def build_projections(self, towers_shape):
        """Builds the projections; returns the projected sequence shapes ``(None, T_m, dim)``."""
        build_per_modality(self.projections, towers_shape, key="sequence")
        return [(None, shape["sequence"][1], self.dim) for shape in towers_shape]

    def project(self, towers):
        """The projected sequences ``[B, T_m, dim]`` and the token masks ``[B, T_m]``."""
        return [p(t["sequence"]) for p, t in zip(self.projections, towers)], [t["mask"] for t in towers]

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio}


def masked_softmax(scores, present, axis=-1):
    """Softmax over modalities (``axis``) that ignores absent ones; ``present`` broadcasts to ``scores``."""
    neg = ops.cast(-1e4, scores.dtype)  # finite in float16, so no NaN when all are absent
    scores = ops.where(ops.cast(present, "bool"), scores, neg)
    weights = ops.softmax(scores, axis=axis)
    return weights * ops.cast(present, weights.dtype)


def joined_length(shapes):
    """Length of sequences concatenated along time (None if any length is unknown)."""
    lengths = [shape[1] for shape in shapes]
    return None if None in lengths else sum(lengths)


def present_mean(vectors, present):
    """Mean of ``[B, M, ...]`` over the present modalities (``present`` ``[B, M]``); zeros when none is."""
    weights = ops.cast(present, vectors.dtype)
    for _ in range(len(vectors.shape) - 2):
        weights = ops.expand_dims(weights, -1)
    count = ops.maximum(ops.sum(weights, axis=1), ops.cast(1.0, vectors.dtype))
    return ops.sum(vectors * weights, axis=1) / count


def build_per_modality(projections, towers_shape, key="pooled"):
    """Builds one projection per modality on that modality's ``key`` shape."""
    for projection, shape in zip(projections, towers_shape):
        projection.build(shape[key])


def concat_width(towers_shape, key="pooled"):
    """Width of the concatenation of every modality's ``key`` tensor."""
    return sum(shape[key][-1] for shape in towers_shape)


def stack_projected(projections, towers):
    """Applies one projection per modality to ``pooled`` and stacks to ``[B, M, D]``."""
    return ops.stack([p(t["pooled"]) for p, t in zip(projections, towers)], axis=1)


def build_fusion(config, num_modalities, name="fusion", dtype=None):
    """Builds a fusion block from ``{"type": "fusion/gated", ...kwargs}``.

    Example:
    ```python
    fusion = build_fusion({"type": "fusion/attention", "dim": 64}, num_modalities=3)
    ```
    """
    config = dict(config)
    return FUSIONS.build(config.pop("type"), num_modalities=num_modalities, name=name, dtype=dtype, **config)
