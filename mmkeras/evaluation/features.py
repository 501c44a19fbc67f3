"""Raw inputs -> numpy features through the model's own ``tf.data`` preprocessing.

``model.preprocess`` runs the SavedModel's batched path (``tf.map_fn``), which is
slow eagerly; evaluation sets of thousands of examples go through the parallel
``tf.data`` map that ``fit`` uses instead (the same per-example function).
"""

import numpy as np

from mmkeras.data import raw as raw_checks


def compute_features(model, x, batch_size=256):
    """Returns ``{feature name: numpy array}`` for raw inputs ``x``.

    Example:
    ```python
    features = compute_features(model, x_test)   # reusable by predict/fit
    probs = model.predict(features)
    ```
    """
    arrays = raw_checks.validate_raw(x, model.modalities, model_name=f"model {model.name!r}")
    parts = [{k: v.numpy() for k, v in batch.items()}
             for batch in model.make_dataset(arrays, None, batch_size=batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


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
