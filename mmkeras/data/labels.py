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


def names_are_indices(class_names):
    """True for the default names ``"0".."N-1"`` (a model built with ``num_classes`` only)."""
    return all(str(c) == str(i) for i, c in enumerate(class_names))


class IntegerLabelWarning(UserWarning):
    """Integer labels given to a model whose classes are names (read as indices into the names)."""


def integer_label_problem(values, class_names, where):
    """The message for the first integer label given to a model whose classes are names, else None.

    The label rule reads such a label as an index into ``class_names``, which is
    rarely what a manifest labelled ``0..9`` means for classes named
    ``"zero".."nine"`` in another order; callers refuse it unless told the
    labels are indices.

    Args:
        values: label values.
        class_names: list of str or None.
        where: callable ``i -> str`` naming the i-th label's place.

    Example:
    ```python
    integer_label_problem(["0"], ["eight", "five"], lambda i: f"row {i}")
    # "row 0: label '0' is an integer, but the classes are names: it would mean 'eight' (0 = 'eight', ..."
    ```
    """
    if not class_names or names_are_indices(class_names):
        return None
    for i, value in enumerate(values):
        value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if str(value) in class_names:
            continue
        index = label_index(value, None)
        if index is None:
            continue
        meaning = (f"it would mean {class_names[index]!r}" if 0 <= index < len(class_names)
                   else f"it is outside [0, {len(class_names)})")
        shown = ", ".join(f"{k} = {c!r}" for k, c in enumerate(class_names[:3]))
        return (f"{where(i)}: label {value!r} is an integer, but the classes are names: {meaning} "
                f"({shown}, ...; integers index the class names in this order)")
    return None


def label_warnings(train, others=(), min_rows=3):
    """Warnings about labels before training: rare training labels (typos?) and unseen held-out ones.

    Args:
        train: ``(values, where)``: training label values and ``i -> place``.
        others: iterable of ``(name, values, where)`` (validation, test data).
        min_rows: int. Fewer training rows than this make a label suspicious.

    Returns:
        list of str, one warning per label.

    Example:
    ```python
    label_warnings((["cat", "cat", "cat", "dog", "dog", "dog", "dgo"], str))
    # ["label 'dgo' is in only 1 training row (6): a typo? a class needs at least 3 examples to learn"]
    ```
    """
    values, where = train
    rows = {}
    for i, value in enumerate(values):
        rows.setdefault(str(value), []).append(i)
    warnings = []
    for label, found in sorted(rows.items(), key=lambda item: (len(item[1]), item[0])):
        if len(found) < min_rows:
            places = ", ".join(where(i) for i in found)
            warnings.append(f"label {label!r} is in only {len(found)} training row{'s' * (len(found) > 1)} "
                            f"({places}): a typo? a class needs at least {min_rows} examples to learn")
    for name, other_values, other_where in others:
        unseen = {}
        for i, value in enumerate(other_values):
            if str(value) not in rows:
                unseen.setdefault(str(value), i)
        for label, i in unseen.items():
            warnings.append(f"{name} label {label!r} ({other_where(i)}) is never seen in training: the model "
                            f"cannot predict it")
    return warnings
