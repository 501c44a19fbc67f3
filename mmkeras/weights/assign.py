"""What every weights converter does around its own name mapping: find the file, set the layers' weights."""

from pathlib import Path

from mmkeras.weights.registry import WEIGHTS, weights_file


def source_path(source, what, filename=None):
    """The file of ``source``: a registered weights name (its ``filename``, default its first) or a path.

    Raises:
        ValueError: ``source`` is neither a registered name nor an existing file (or the named
            weights are not installed: the error carries the install command).

    Example:
    ```python
    source_path("speech_embedding", "speech_embedding weights", "embedding_model.onnx")
    ```
    """
    path = weights_file(source, filename) if source in WEIGHTS else Path(source)
    if not path.is_file():
        raise ValueError(f"{what}: {source!r} is neither a registered name ({', '.join(sorted(WEIGHTS))}) "
                         "nor an existing file")
    return path


def set_layer_weights(pairs, path):
    """Sets each ``(keras_layer, [arrays])`` pair after checking every shape against the layer's.

    Raises:
        ValueError: a layer's weight shapes differ from the arrays' (names the layer and ``path``).
    """
    for layer, arrays in pairs:
        expected = [tuple(w.shape) for w in layer.weights]
        if expected != [a.shape for a in arrays]:
            raise ValueError(f"{path}: layer {layer.name} expects shapes {expected}, "
                             f"the file has {[a.shape for a in arrays]}")
        layer.set_weights(arrays)
