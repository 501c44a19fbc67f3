"""Validation of raw in-memory inputs and labels, before any training step.

Every check raises a ValueError that names the input and says what was expected.
"""

import numpy as np
import tensorflow as tf

from mmkeras.data import labels as label_codes
from mmkeras.modalities import is_raw_input, modality


def _expected(name):
    return modality(name).description


def _as_string_array(name, value):
    if isinstance(value, (str, bytes)):
        raise ValueError(f"input {name!r} must be a list/array of {_expected(name)} (one per example), "
                         f"got a single {type(value).__name__}")
    if isinstance(value, tf.Tensor):
        if value.dtype != tf.string:
            raise ValueError(f"input {name!r} must hold {_expected(name)}, got a {value.dtype.name} tensor "
                             f"of shape {value.shape}")
        value = value.numpy()
    arr = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
    if arr.dtype.kind in "US":
        arr = arr.astype(object)
    if arr.ndim != 1:
        raise ValueError(f"input {name!r} must be 1-D (one {_expected(name)} per example), got shape {arr.shape} "
                         f"of dtype {arr.dtype}")
    if arr.dtype != object or not all(isinstance(v, (bytes, str)) for v in arr):
        bad = next((type(v).__name__ for v in arr if not isinstance(v, (bytes, str))), arr.dtype)
        raise ValueError(f"input {name!r} must hold {_expected(name)}; found an element of type {bad}")
    return arr


def is_raw_dataset(dataset, modalities):
    """True when a tf.data.Dataset yields raw strings for the model's modalities."""
    spec = dataset.element_spec
    features = spec[0] if isinstance(spec, tuple) else spec
    return isinstance(features, dict) and all(
        m in features and features[m].dtype == tf.string for m in modalities
    )


def is_raw_dict(x, modalities):
    """True when ``x`` is a dict keyed by modality names (raw input), not model features."""
    return isinstance(x, dict) and is_raw_input(x)


def validate_raw(x, modalities, model_name="model"):
    """Checks keys and value types of a raw input dict; returns ``{m: object array}``."""
    if not isinstance(x, dict):
        raise ValueError(f"{model_name} expects a dict with keys {list(modalities)}, got {type(x).__name__}")
    missing = [m for m in modalities if m not in x]
    if missing:
        raise ValueError(f"input {missing[0]!r} is missing: {model_name} takes keys {list(modalities)}, "
                         f"got {sorted(x)}. Pass b''/'' for an absent modality.")
    extra = [k for k in x if k not in modalities]
    if extra:
        raise ValueError(f"unexpected input key(s) {extra}: {model_name} takes only {list(modalities)}")
    arrays = {m: _as_string_array(m, x[m]) for m in modalities}
    sizes = {m: len(a) for m, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"inputs have different numbers of examples: {sizes}")
    if next(iter(sizes.values())) == 0:
        raise ValueError(f"inputs are empty: {model_name} needs at least one example")
    return arrays


def validate_labels(y, heads, num_examples):
    """Checks labels against the heads; returns a dict ``{head name: array}``."""
    if not isinstance(y, dict):
        if len(heads) > 1:
            raise ValueError(f"this model has several heads {[h['name'] for h in heads]}: pass y as a dict "
                             f"keyed by head name")
        y = {heads[0]["name"]: y}
    out = {}
    for head in heads:
        name = head["name"]
        if name not in y:
            raise ValueError(f"labels for head {name!r} are missing; got keys {sorted(y)}")
        arr = y[name]
        arr = np.asarray(arr.numpy() if isinstance(arr, tf.Tensor) else arr)
        if arr.ndim == 0:
            raise ValueError(f"labels for head {name!r} must have one value per example, got a scalar {arr!r}")
        if len(arr) != num_examples:
            raise ValueError(f"labels for head {name!r} have {len(arr)} rows but the inputs have {num_examples}")
        out[name] = _check_head_labels(name, head, arr)
    extra = set(y) - {h["name"] for h in heads}
    if extra:
        raise ValueError(f"labels given for unknown head(s) {sorted(extra)}; heads are {[h['name'] for h in heads]}")
    return out


def _check_head_labels(name, head, arr):
    units = head["units"]
    if head["type"] == "classification":
        if label_codes.is_text_array(arr) and arr.ndim == 1:  # class names (or integers written as text)
            return label_codes.encode(list(arr), head.get("class_names"), units,
                                      where=lambda i: f"labels for head {name!r}, example {i}")
        if arr.ndim == 2 and arr.shape[1] == units:
            arr = arr.argmax(axis=1)  # one-hot rows
        if arr.ndim != 1:
            raise ValueError(f"labels for head {name!r} must be class indices of shape [N] (or one-hot [N, {units}]),"
                             f" got shape {arr.shape}")
        if arr.dtype.kind not in "iub" and not (arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0)):
            raise ValueError(f"labels for head {name!r} must be integer class indices, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= units:
            raise ValueError(f"labels for head {name!r} must be in [0, {units}) (num_classes={units}), "
                             f"got values in [{arr.min()}, {arr.max()}]")
        return arr.astype("int32")
    arr = arr.astype("float32")
    if arr.ndim == 1 and units == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != units:
        raise ValueError(f"labels for head {name!r} must have shape [N, {units}], got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"labels for head {name!r} contain NaN or infinity")
    return arr
