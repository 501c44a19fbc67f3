"""Maps openWakeWord's ``embedding_model.onnx`` (Google's speech_embedding) onto
:class:`mmkeras.towers.AudioSpeechEmbedding`, reading the file with :mod:`mmkeras.weights.onnx_reader`.

The ONNX graph (exported from TensorFlow, NCHW with H = time, W = mel band) holds,
in order, one 3x3 ``Conv`` without bias followed by a ``BatchNormalization``, then
18 ``Conv`` nodes whose BatchNorm the export folded into a bias, then a last 3x3-by-1
``Conv`` without bias. Kernels go from ONNX's ``[out, in, kh, kw]`` to Keras's
``[kh, kw, in, out]``; each node's kernel shape is checked against its layer.
"""

import numpy as np

from mmkeras.weights.assign import set_layer_weights, source_path
from mmkeras.weights.onnx_reader import load_onnx_graph


def _conv_arrays(graph, node):
    arrays = [np.transpose(graph.initializers[node.inputs[1]], (2, 3, 1, 0))]
    if len(node.inputs) > 2:
        arrays.append(graph.initializers[node.inputs[2]])
    return arrays


def speech_embedding_assignments(tower, graph):
    """Pairs ``(keras_layer, [arrays])`` for every pretrained layer of ``tower`` from the ONNX ``graph``.

    Raises:
        ValueError: the graph does not have the speech_embedding layer list (says what differs).
    """
    convs, norms = graph.nodes_of("Conv"), graph.nodes_of("BatchNormalization")
    layers = [tower.first[0]] + tower.convs + [tower.last]
    if len(convs) != len(layers) or len(norms) != 1:
        raise ValueError(f"expected {len(layers)} Conv nodes and 1 BatchNormalization (speech_embedding), "
                         f"found {len(convs)} and {len(norms)}")
    pairs = [(layer, _conv_arrays(graph, node)) for layer, node in zip(layers, convs)]
    scale, offset, mean, var = (graph.initializers[name] for name in norms[0].inputs[1:5])
    return pairs[:1] + [(tower.first[1], [scale, offset, mean, var])] + pairs[1:]


def load_speech_embedding(tower, source):
    """Loads speech_embedding's weights into a built :class:`~mmkeras.towers.AudioSpeechEmbedding`.

    Args:
        tower: the built tower.
        source: a registered weights name (``"speech_embedding"``) or a path to
            openWakeWord's ``embedding_model.onnx``.

    Raises:
        ValueError: the weights are not installed (with the pip command), the file is not
            a readable ONNX model or not speech_embedding's graph, or a tensor's shape
            differs from its layer's (names the layer).

    Example:
    ```python
    tower = AudioSpeechEmbedding()
    tower.build((None, 98, 32))
    load_speech_embedding(tower, "speech_embedding")
    ```
    """
    path = source_path(source, "speech_embedding weights", "embedding_model.onnx")
    graph = load_onnx_graph(path)
    try:
        pairs = speech_embedding_assignments(tower, graph)
    except (KeyError, IndexError) as e:
        raise ValueError(f"{path}: not speech_embedding's graph (missing tensor {e})") from None
    except ValueError as e:
        raise ValueError(f"{path}: not speech_embedding's graph ({e})") from None
    set_layer_weights(pairs, path)
