"""Feature-level edits used by the robustness evaluation (a modality removed or replaced).

Raw inputs become features with ``model.preprocess`` (the model's own ``tf.data``
pipeline); :func:`compute_features` is kept as its evaluation-side name.
"""

import numpy as np


def compute_features(model, x, batch_size=256):
    """Returns ``{feature name: numpy array}`` for raw inputs ``x`` (``model.preprocess``).

    Example:
    ```python
    features = compute_features(model, x_test)   # reusable by predict/fit
    probs = model.predict(features)
    ```
    """
    return model.preprocess(x, batch_size=batch_size)


def remove_modality(features, modalities, modality):
    """Features with ``modality`` absent: zeros and ``present`` 0, exactly what
    preprocessing yields for an empty input (a test checks the equality)."""
    out = dict(features)
    i = list(modalities).index(modality)
    out[modality] = np.zeros_like(features[modality])
    present = features["present"].copy()
    present[:, i] = 0.0
    out["present"] = present
    return out


def replace_modality(features, modalities, modality, new_features):
    """Features where one modality (and its presence flag) comes from ``new_features``."""
    out = dict(features)
    i = list(modalities).index(modality)
    out[modality] = new_features[modality]
    present = features["present"].copy()
    present[:, i] = new_features["present"][:, i]
    out["present"] = present
    return out


def single_modality_features(features, modalities, modality):
    """The features a ``modality``-only model takes, cut from a model's over ``modalities``.

    Every modality preprocesses on its own, so a single-modality model's features are
    the multimodal model's for that modality, with its column of ``present``.

    Example:
    ```python
    image_only.predict(single_modality_features(features, ["image", "audio"], "image"))
    ```
    """
    i = list(modalities).index(modality)
    return {modality: features[modality], "present": features["present"][:, i:i + 1]}
