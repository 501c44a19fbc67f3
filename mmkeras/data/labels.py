"""Class labels: names or indices -> indices, with errors that say where the bad label is.

One rule on every path (in-memory arrays, manifests, ``tf.data`` datasets): a
label equal to one of the head's ``class_names`` is that class; otherwise an
integer (or a string holding one) is the class index. Indices must lie in
``[0, num_classes)``.
"""

import numpy as np
import tensorflow as tf


def label_index(value, class_names):
    """The class index of one label value, or None if it is neither a class name nor an integer."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if class_names is not None and str(value) in class_names:
        return list(class_names).index(str(value))
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _expected(class_names):
    if class_names:
        shown = list(class_names) if len(class_names) <= 12 else list(class_names[:12]) + ["..."]
        return f"one of the class names {shown} or an integer index"
    return "an integer class index (this model has no class_names; build it with class_names=[...] to use names)"


def encode(values, class_names, num_classes, where):
    """Labels (names, integers or integer strings) -> int32 indices in ``[0, num_classes)``.

    Args:
        values: sequence of label values.
        class_names: list of str or None.
        num_classes: int or None (no range check).
        where: callable ``i -> str`` naming the i-th label's place in error
            messages (``"example 3"``, ``"manifest 'train.csv' line 5"``).

    Raises:
        ValueError: for the first label that is not a class, naming it and where it is.
    """
    out = np.empty(len(values), np.int32)
    for i, value in enumerate(values):
        value = value.item() if isinstance(value, np.generic) else value  # repr "three", not np.str_('three')
        index = label_index(value, class_names)
        if index is None:
            raise ValueError(f"{where(i)}: label {value!r} is not {_expected(class_names)}")
        if num_classes is not None and not 0 <= index < num_classes:
            raise ValueError(f"{where(i)}: label {value!r} is outside [0, {num_classes}) (num_classes={num_classes})"
                             + (f"; class names: {list(class_names)}" if class_names else ""))
        out[i] = index
    return out


def is_text_array(arr):
    """True when a numpy array holds strings (names) rather than numbers."""
    return arr.dtype.kind in "USa" or (arr.dtype == object and any(isinstance(v, (str, bytes)) for v in arr.flat))


def dataset_encoder(heads):
    """A ``tf.data`` map function checking and encoding the labels of ``(x, y[, w])`` elements.

    String labels become indices through each classification head's class
    names; integer labels are checked against ``[0, units)``. A bad label fails
    the step with ``mmkeras: labels for head ...`` naming the value.
    """
    by_name = {h["name"]: h for h in heads}

    def encode_head(head, y):
        if head["type"] != "classification":
            return y
        units, names = head["units"], head.get("class_names")
        if y.dtype == tf.string:
            if not names:
                raise ValueError(f"labels for head {head['name']!r} are strings but the model has no class_names; "
                                 f"build it with build_model(..., class_names=[...])")
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(names), tf.range(len(names), dtype=tf.int64)), -1)
            ids = table.lookup(y)
            bad = tf.boolean_mask(y, ids < 0)
            check = tf.debugging.Assert(tf.size(bad) == 0, [
                f"mmkeras: labels for head '{head['name']}' must be one of the class names {names}; got", bad[:3]])
            with tf.control_dependencies([check]):
                return tf.identity(ids)
        if y.dtype.is_floating or y.dtype.is_integer:
            if y.shape.rank is not None and y.shape.rank >= 1 and y.shape[-1] == units and units > 1 \
                    and y.dtype.is_floating:
                return y  # one-hot rows
            ids = tf.cast(y, tf.int64)
            outside = tf.boolean_mask(ids, tf.logical_or(ids < 0, ids >= units))
            check = tf.debugging.Assert(tf.size(outside) == 0, [
                f"mmkeras: labels for head '{head['name']}' must be class indices in [0, {units}); got", outside[:3]])
            with tf.control_dependencies([check]):
                return tf.identity(y)
        return y

    def fn(x, y, *rest):
        if isinstance(y, dict):
            y = {k: encode_head(by_name[k], v) if k in by_name else v for k, v in y.items()}
        elif len(heads) == 1:
            y = encode_head(heads[0], y)
        return (x, y, *rest)

    return fn
