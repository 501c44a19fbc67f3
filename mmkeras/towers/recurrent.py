"""Recurrent towers: (Bi)LSTM / (Bi)GRU over text tokens or audio frames."""

import keras
from keras import layers, ops

from mmkeras.layers.shapes import chain
from mmkeras.towers.base import TOWERS, Tower, combine_masks


class RNNTower(Tower):
    """Input projection -> stacked (bidirectional) LSTM/GRU layers.

    Args:
        dim: int. Output width (each direction gets ``dim // 2`` when bidirectional).
        cell: str. ``"lstm"`` or ``"gru"``.
        num_layers: int. Stacked recurrent layers.
        bidirectional: bool. Run each layer both ways and concatenate.
        dropout: float. Dropout between layers.
    """

    def __init__(self, dim=128, cell="lstm", num_layers=1, bidirectional=True, dropout=0.0, **kwargs):
        super().__init__(dim=dim, dropout=dropout, **kwargs)
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        if bidirectional and dim % 2:
            raise ValueError(f"a bidirectional tower needs an even dim, got {dim}")
        self.cell = cell
        self.num_layers = num_layers
        self.limit_layers("num_layers", 2 * int(num_layers))
        self.bidirectional = bidirectional
        rnn_cls = layers.LSTM if cell == "lstm" else layers.GRU
        units = dim // 2 if bidirectional else dim
        self.rnns = []
        for i in range(num_layers):
            rnn = rnn_cls(units, return_sequences=True, dtype=self.dtype_policy, name=f"{cell}{i}")
            if bidirectional:
                rnn = layers.Bidirectional(rnn, dtype=self.dtype_policy, name=f"bi{cell}{i}")
            self.rnns.append(rnn)
        self.drop = layers.Dropout(dropout, dtype=self.dtype_policy)

    def stem(self, x, mask=None):
        """Returns ``(sequence, mask or None)``; ``mask`` is the input's Keras mask."""
        raise NotImplementedError

    def stem_layers(self):
        raise NotImplementedError

    def encode(self, x, mask=None, training=None):
        x, mask = self.stem(x, mask=mask)
        for rnn in self.rnns:
            x = self.drop(rnn(x, mask=mask, training=training), training=training)
        return x, mask

    def encode_shape(self, input_shape, build=False):
        shape = chain(self.stem_layers(), input_shape, build)
        for rnn in self.rnns:
            shape = chain([rnn, self.drop], shape, build)
        return shape

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
        }


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("text/rnn")
class TextRNN(RNNTower):
    """BiLSTM/BiGRU text tower over token ids (0 = padding, masked).

    Args:
        vocab_size: int. Embedding rows.
        embedding_dim: int. Token embedding width.
        **kwargs: see :class:`RNNTower`.

    Example:
    ```python
    tower = TextRNN(vocab_size=1000, dim=64, cell="gru")
    out = tower(keras.ops.array([[5, 9, 0, 0]]))
    ```
    """

    def __init__(self, vocab_size=20000, embedding_dim=128, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.embedding = layers.Embedding(vocab_size, embedding_dim, dtype=self.dtype_policy, name="embedding")

    def stem(self, x, mask=None):
        return self.embedding(x), combine_masks(ops.not_equal(x, 0), mask)

    def stem_layers(self):
        return [self.embedding]

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim}


@keras.saving.register_keras_serializable(package="mmkeras")
@TOWERS.register("audio/rnn")
class AudioRNN(RNNTower):
    """BiLSTM/BiGRU audio tower over log-mel frames.

    Example:
    ```python
    tower = AudioRNN(dim=64)
    out = tower(keras.ops.zeros((2, 50, 40)))
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.input_proj = layers.Dense(self.dim, activation="relu", dtype=self.dtype_policy, name="input_proj")

    def stem(self, x, mask=None):
        return self.input_proj(x), mask

    def stem_layers(self):
        return [self.input_proj]
