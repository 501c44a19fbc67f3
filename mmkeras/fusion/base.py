"""The fusion contract and registry.

A fusion block takes the list of tower outputs (``{"sequence", "mask", "pooled"}``
per modality, in the model's modality order) and ``present`` ``[B, M]`` (1 where
the modality is there) and returns one fused vector ``[B, D]``. Absent modalities
must not influence the result except through their learned missing embedding.
"""

import keras
from keras import layers, ops

from mmkeras.registry import Registry

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
        self.supports_masking = True  # masks travel explicitly in the tower output dict
        self.dim = dim
        self.dropout = dropout
        self.drop = layers.Dropout(dropout, dtype=self.dtype_policy)

    def per_modality(self, units, activation=None, name="proj"):
        """One Dense per modality (call from ``__init__``)."""
        return [
            layers.Dense(units, activation=activation, dtype=self.dtype_policy, name=f"{name}{i}")
            for i in range(self.num_modalities)
        ]

    def compute_mask(self, *args, **kwargs):
        return None

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


def masked_softmax(scores, present, axis=-1):
    """Softmax over modalities (``axis``) that ignores absent ones; ``present`` broadcasts to ``scores``."""
    neg = ops.cast(-1e4, scores.dtype)  # finite in float16, so no NaN when all are absent
    scores = ops.where(ops.cast(present, "bool"), scores, neg)
    weights = ops.softmax(scores, axis=axis)
    return weights * ops.cast(present, weights.dtype)


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
