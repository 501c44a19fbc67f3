"""Kim-2014-style text CNN: parallel 1-D convolutions of several widths over embeddings."""

import keras
from keras import layers, ops

from mmkeras.layers.shapes import chain
from mmkeras.towers.base import TOWERS, Tower, combine_masks


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("text/cnn")
class TextCNN(Tower):
    """Convolutions of several kernel widths over token embeddings.

    ``sequence`` is the concatenated conv features projected to ``dim``; ``pooled``
    is their max over valid time steps (Kim's pooling).

    Args:
        vocab_size: int. Embedding rows.
        embedding_dim: int. Token embedding width.
        kernel_sizes: list of int. Convolution widths.
        filters: int. Filters per width.
        dim: int. Output width.
        dropout: float. Dropout on the output.

    Example:
    ```python
    tower = TextCNN(vocab_size=1000, dim=64)
    out = tower(keras.ops.array([[5, 9, 3, 0]]))
    ```
    """

    def __init__(self, vocab_size=20000, embedding_dim=128, kernel_sizes=(3, 4, 5), filters=100, dim=128,
                 dropout=0.0, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.kernel_sizes = list(kernel_sizes)
        self.limit_layers("kernel_sizes", len(self.kernel_sizes))
        self.filters = filters
        dt = self.dtype_policy
        self.embedding = layers.Embedding(vocab_size, embedding_dim, dtype=dt, name="embedding")
        self.convs = [
            layers.Conv1D(filters, k, padding="same", activation="relu", dtype=dt, name=f"conv{k}")
            for k in self.kernel_sizes
        ]
        self.project = layers.Dense(dim, dtype=dt, name="project")
        self.drop = layers.Dropout(dropout, dtype=dt)

    def encode(self, x, mask=None, training=None):
        mask = combine_masks(ops.not_equal(x, 0), mask)
        h = self.embedding(x)
        h = ops.concatenate([conv(h) for conv in self.convs], axis=-1)
        return self.project(self.drop(h, training=training)), mask

    def encode_shape(self, input_shape, build=False):
        embedded = chain([self.embedding], input_shape, build)
        b, t, _ = embedded
        for conv in self.convs:
            chain([conv], embedded, build)
        return chain([self.drop, self.project], (b, t, self.filters * len(self.convs)), build)

    def call(self, x, mask=None, training=None):
        out = super().call(x, mask=mask, training=training)
        # Max over valid time steps is the classic Kim pooling; it beats the mean on sentiment.
        neg = ops.cast(-1e4, out["sequence"].dtype)
        masked = ops.where(ops.expand_dims(out["mask"], -1), out["sequence"], neg)
        pooled = ops.max(masked, axis=1)
        out["pooled"] = ops.where(ops.any(out["mask"], axis=1, keepdims=True), pooled, ops.zeros_like(pooled))
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "kernel_sizes": self.kernel_sizes,
            "filters": self.filters,
        }
