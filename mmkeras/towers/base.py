"""The tower contract and registry.

A tower turns one modality's features into ``{"sequence": [B, T, D], "mask": [B, T]
bool, "pooled": [B, D]}``. Late-fusion blocks read ``pooled``; early fusion reads
``sequence`` and ``mask``. Subclasses implement :meth:`Tower.encode` only.
"""

import keras
from keras import ops

from mmkeras.layers import MaskedMeanPooling
from mmkeras.registry import Registry

TOWERS = Registry("tower")


class Tower(keras.layers.Layer):
    """Base class of all towers.

    Args:
        dim: int. Width D of the sequence and pooled outputs.
        dropout: float. Dropout rate used inside the tower (training only).
    """

    def __init__(self, dim=128, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.supports_masking = True  # masks travel explicitly in the tower output dict
        self.dropout = dropout
        self.pool = MaskedMeanPooling(dtype=self.dtype_policy, name="pool")

    def compute_mask(self, *args, **kwargs):
        return None

    def encode(self, x, training=None):
        """Returns ``(sequence [B, T, D], mask [B, T] bool or None)``."""
        raise NotImplementedError

    def call(self, x, training=None):
        sequence, mask = self.encode(x, training=training)
        if mask is None:
            mask = ops.ones(ops.shape(sequence)[:2], dtype="bool")
        return {"sequence": sequence, "mask": mask, "pooled": self.pool(sequence, mask=mask)}

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "dropout": self.dropout}


def build_tower(config, name=None, dtype=None):
    """Builds a tower from ``{"type": "image/cnn", ...kwargs}``.

    Example:
    ```python
    tower = build_tower({"type": "text/transformer", "dim": 64, "vocab_size": 1000})
    ```
    """
    config = dict(config)
    kind = config.pop("type")
    return TOWERS.build(kind, name=name, dtype=dtype, **config)
