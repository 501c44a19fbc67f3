"""Maps the PyTorch EfficientNet-Lite0 state dict onto :class:`mmkeras.towers.ImageEfficientNetLite`.

The state dict uses the names of the PyTorch port (``_conv_stem``, ``_bn0``,
``_blocks.{i}._expand_conv`` / ``_bn0`` / ``_depthwise_conv`` / ``_bn1`` /
``_project_conv`` / ``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``). Kernels are
transposed from PyTorch's ``[out, in, kh, kw]`` to Keras's ``[kh, kw, in, out]``
(depthwise: ``[channels, 1, kh, kw]`` -> ``[kh, kw, channels, 1]``).
"""

import numpy as np

from mmkeras.weights.assign import set_layer_weights, source_path
from mmkeras.weights.torch_pickle import load_state_dict


def _conv(w):
    return np.transpose(w, (2, 3, 1, 0))


def _depthwise(w):
    return np.transpose(w, (2, 3, 0, 1))


def _bn(state, prefix):
    return [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]


def lite0_assignments(tower, state):
    """Pairs ``(keras_layer, [arrays])`` for every backbone layer of ``tower`` from ``state``.

    Raises:
        ValueError: a tensor the tower needs is missing or has another shape (names it).
    """
    pairs = [(tower.stem[0], [_conv(state["_conv_stem.weight"])]), (tower.stem[1], _bn(state, "_bn0"))]
    for i, block in enumerate(tower.blocks):
        p = f"_blocks.{i}."
        if block.expand:
            pairs += [(block.expand[0], [_conv(state[p + "_expand_conv.weight"])]),
                      (block.expand[1], _bn(state, p + "_bn0"))]
        pairs += [(block.depthwise[0], [_depthwise(state[p + "_depthwise_conv.weight"])]),
                  (block.depthwise[1], _bn(state, p + "_bn1")),
                  (block.project[0], [_conv(state[p + "_project_conv.weight"])]),
                  (block.project[1], _bn(state, p + "_bn2"))]
    pairs += [(tower.head[0], [_conv(state["_conv_head.weight"])]), (tower.head[1], _bn(state, "_bn1"))]
    return pairs


def load_efficientnet_lite0(tower, source):
    """Loads EfficientNet-Lite0 ImageNet weights into a built tower.

    Args:
        tower: a built :class:`~mmkeras.towers.ImageEfficientNetLite` with the Lite0 architecture.
        source: a registered weights name (``"efficientnet_lite0"``) or a ``.pth`` path.

    Returns:
        dict: the classifier's ``{"kernel": [1280, 1000], "bias": [1000]}`` (ImageNet logits =
        ``pooled @ kernel + bias``), which the tower itself does not hold.

    Raises:
        ValueError: the weights are not installed (with the pip command), the file is not
            an EfficientNet-Lite0 state dict, or a tensor's shape differs (names the layer).

    Example:
    ```python
    tower = ImageEfficientNetLite()
    tower.build((None, 224, 224, 3))
    classifier = load_efficientnet_lite0(tower, "efficientnet_lite0")
    ```
    """
    path = source_path(source, "EfficientNet-Lite0 weights")
    state = load_state_dict(path)
    try:
        pairs = lite0_assignments(tower, state)
    except KeyError as e:
        raise ValueError(f"{path}: not an EfficientNet-Lite0 state dict (no tensor {e.args[0]!r})") from None
    set_layer_weights(pairs, path)
    return {"kernel": state["_fc.weight"].T, "bias": state["_fc.bias"]}
