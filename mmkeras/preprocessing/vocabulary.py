"""The learned state of text preprocessing: a ``TextVectorization`` that saves before it is adapted."""

import os

import keras


class _EmptyTolerantStringLookup(keras.layers.StringLookup):
    """StringLookup whose saved vocabulary may be empty (a text model never adapted).

    Keras cannot load such a layer (the lookup table refuses empty keys), yet saving
    an unadapted model is legitimate; loading then keeps the empty vocabulary.
    """

    def load_assets(self, dir_path):
        path = os.path.join(dir_path, "vocabulary.txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if not [t for t in f.read().split("\n") if t and t != self.oov_token]:
                    return
        super().load_assets(dir_path)


@keras.saving.register_keras_serializable(package="mmkeras")
class TextVectorizer(keras.layers.TextVectorization):
    """``TextVectorization`` that can be saved and reloaded before it is adapted.

    Example:
    ```python
    vectorizer = TextVectorizer(max_tokens=1000, standardize=None, output_sequence_length=16)
    vectorizer.adapt(["a red square", "a blue circle"])
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # TextVectorization builds its StringLookup internally; swap in the tolerant subclass.
        self._lookup_layer.__class__ = _EmptyTolerantStringLookup
        # It runs in tf.data and the export graph, never inside the model's train step, so it
        # must not veto XLA for the model (Keras checks every tracked layer's supports_jit;
        # without this JAX trained op by op, about 4x slower).
        self.supports_jit = True
        self._lookup_layer.supports_jit = True
