"""What the serving graph checks about a whole request, before preprocessing and before the model.

TF Serving feeds whatever tensor a client sends into a signature's inputs: a
scalar, a matrix, an empty batch, inputs of different lengths, NaN features. The
C++ server does not check a fed tensor against the signature's shape, so the
graph does, with messages that start with ``mmkeras: input '<name>'``:

- raw signatures (``serving_default``, ``embed``): each input is a 1-D batch,
  not empty, every input has the same length, at most ``max_examples``; then no
  example has every input empty (checked on the raw bytes, before any decoding,
  and again on the preprocessed ``present`` flags, before the model);
- ``features``: each tensor has the feature shape, the batch checks above, and
  the rule its modality declares (``Modality.feature_rules``): finite float
  features by default, 0/1 flags (``present``, ``audio_windows``), token ids inside
  the tower's vocabulary (``text``); after the model, finite outputs (finite but
  extreme features, such as 3e38, overflow inside the model).
"""

import tensorflow as tf

from mmkeras.modalities import modality
from mmkeras.preprocessing import checks


def _shape_stages(tensors, shapes, what):
    """Each tensor has its expected shape; returns ``(stages, batch sizes)``.

    Computed so that no op can fail whatever was fed, and so that nothing can be
    folded into a constant: TensorFlow's graph optimizer replaces ``Rank`` (and
    sizes of shapes) by the signature's static values, which a fed tensor need not
    match. The shape vector is padded with -1 instead: a missing dimension reads
    -1, an extra one reads as a size where -1 is expected.
    """
    stages, sizes = [], {}
    for name, t in tensors.items():
        expected = list(shapes[name])
        shape = tf.shape(t, out_type=tf.int64)
        padded = tf.concat([shape, tf.fill([len(expected) + 2], tf.constant(-1, tf.int64))], 0)
        padded = padded[:len(expected) + 2]
        good = (padded[0] >= 0) & tf.equal(padded[len(expected) + 1], -1)
        if expected:
            good &= tf.reduce_all(tf.equal(padded[1:len(expected) + 1], expected))
        stages.append((~good, checks.prefix(name) + f": expected {what[name]}, got shape [{{}}]",
                       [tf.strings.reduce_join(tf.strings.as_string(shape), separator=", ")]))
        sizes[name] = tf.maximum(padded[0], 0)
    return stages, sizes


def _batch_stages(sizes, max_examples):
    """Batch-size stages for ``{name: number of examples}`` (int64 scalars)."""
    names = list(sizes)
    first = names[0]
    stages = [(tf.equal(sizes[n], 0), checks.prefix(n) + ": the batch is empty; send at least one example", [])
              for n in names]
    stages += [(tf.not_equal(sizes[n], sizes[first]),
                checks.prefix(n) + f": {{}} examples, but input '{first}' has {{}}; every input needs one entry "
                "per example (b'' when absent)", [sizes[n], sizes[first]]) for n in names[1:]]
    stages.append((sizes[first] > max_examples, checks.prefix(first) + f": {{}} examples, more than the limit "
                   f"max_examples={max_examples}", [sizes[first]]))
    return stages


def check_raw_request(raw, max_examples):
    """Raw request tensors ``{modality: [B] tf.string}`` gated on the request checks.

    One check in the graph: shape, then batch sizes, then examples with every input
    empty, each computed so that it cannot fail on a malformed request itself
    (emptiness is padded to the longest input).

    Returns:
        The same dict; its tensors can only be read once every check passed.
    """
    what = {m: "a 1-D batch of strings (one per example, b'' when absent)" for m in raw}
    stages, sizes = _shape_stages(raw, {m: [] for m in raw}, what)
    flat = {m: tf.reshape(v, [-1]) for m, v in raw.items()}
    counts = {m: tf.size(v, out_type=tf.int64) for m, v in flat.items()}
    longest = tf.reduce_max(tf.stack(list(counts.values())))
    empty = tf.reduce_all(tf.stack([tf.pad(tf.equal(tf.strings.length(v), 0), [[0, longest - counts[m]]],
                                           constant_values=True) for m, v in flat.items()]), axis=0)
    # (argmax of an empty batch would fail: a False is appended)
    first_empty = tf.argmax(tf.cast(tf.concat([empty, [False]], 0), tf.int32), output_type=tf.int64)
    stages += _batch_stages(sizes, max_examples)
    stages.append((tf.reduce_any(empty), checks.prefix("/".join(raw), example=True) + ": every input is empty; "
                   "send at least one non-empty modality per example", [first_empty]))
    return checks.after([checks.check_first(stages)], raw)


def check_some_modality_used(features, modalities):
    """Features gated on every example having at least one modality present after preprocessing.

    Catches what the raw check cannot see (a WAV header with no samples is absent),
    before the model runs: every feature, not only ``present``, waits for it.
    """
    unused = tf.reduce_all(tf.equal(features["present"], 0.0), axis=1)
    done = checks.check_batch(unused, "/".join(modalities), "no input could be used (every input empty, or a "
                              "WAV with no samples); send at least one non-empty modality per example")
    return checks.after([done], features)


def feature_rules(model):
    """``{feature: rule}`` for the model's features: ``present`` is a flag, the rest as each modality declares.

    A rule is ``"flag"`` (0 or 1) or ``("ids", n)`` (ids in ``[0, n)``); a feature
    without one must be finite (see ``Modality.feature_rules``).
    """
    rules = {"present": "flag"}
    for m in model.modalities:
        spec = model.mm_config["modalities"][m]
        rules.update(modality(m).feature_rules(spec["preprocessing"], spec["tower"]))
    return rules


def text_vocab_size(model):
    """Rows of the (first) token-id feature's embedding (None without one): fed ids must be below it."""
    return next((rule[1] for rule in feature_rules(model).values() if isinstance(rule, tuple)), None)


def check_features_request(features, shapes, rules, max_examples):
    """The ``features`` signature's tensors gated on shape, batch and value checks.

    Args:
        features: ``{name: tensor}`` as fed.
        shapes: ``{name: (shape without batch, dtype)}`` (``Preprocessor.feature_shapes()``).
        rules: dict ``{name: rule}`` (:func:`feature_rules`): ``"flag"`` values are 0 or 1,
            ``("ids", n)`` values lie in ``[0, n)``; any other feature must be finite.
        max_examples: int. Largest batch.

    Returns:
        The same dict, gated on the checks.
    """
    what = {n: f"a [batch, {', '.join(str(d) for d in shapes[n][0])}] {shapes[n][1]} tensor" for n in features}
    stages, sizes = _shape_stages(features, {n: shapes[n][0] for n in features}, what)
    done = checks.check_first(stages + _batch_stages(sizes, max_examples))
    value_checks = []
    with tf.control_dependencies([done]):
        for n, t in features.items():
            axes = list(range(1, 1 + len(shapes[n][0])))
            kind = rules.get(n)
            if kind == "flag":
                bad = ~tf.reduce_all(tf.equal(t, 0.0) | tf.equal(t, 1.0), axis=axes)
                rule = "values must be 0 or 1 (absent or present)"
            elif isinstance(kind, tuple):  # ("ids", n)
                bad = tf.reduce_any((t < 0) | (t >= kind[1]), axis=axes)
                rule = f"token ids must be in [0, {kind[1]})"
            else:
                bad = ~tf.reduce_all(tf.math.is_finite(t), axis=axes)
                rule = "holds NaN or Inf; features must be finite"
            value_checks.append(checks.check_batch(bad, n, rule))
        unused = tf.reduce_all(tf.equal(features["present"], 0.0), axis=1)
        value_checks.append(checks.check_batch(unused, "present", "every modality is absent; at least one "
                                               "modality per example must be present"))
    return checks.after(value_checks, features)


def check_finite_outputs(outputs, features, rules=None):
    """The ``features`` signature's outputs gated on every float output being finite.

    Finite features can still overflow inside the model (an image of 3e38 gives
    Inf activations, then NaN scores). The request is refused with
    ``INVALID_ARGUMENT`` naming the first such example and, as the likely cause,
    its float input with the largest magnitude (the first float input when none
    is large), rather than answering NaN.

    Args:
        outputs: the signature's ``{name: tensor}`` outputs (string outputs are skipped).
        features: the checked ``{name: tensor}`` inputs.
        rules: dict or None. :func:`feature_rules`: its 0/1 flags are never the likely cause.

    Returns:
        ``outputs``, gated on the check.

    Example:
    ```python
    outputs = check_finite_outputs(model_outputs, features)
    ```
    """
    bad = [~tf.reduce_all(tf.math.is_finite(t), axis=list(range(1, t.shape.rank)))
           for t in outputs.values() if t.dtype.is_floating]
    if not bad:
        return outputs
    bad = tf.reduce_any(tf.stack(bad), axis=0)
    flags = {n for n, rule in (rules or {"present": "flag"}).items() if rule == "flag"}
    floats = {n: t for n, t in features.items() if t.dtype.is_floating and n not in flags}
    names = list(floats) or ["/".join(features)]
    sizes = [tf.reduce_max(tf.abs(t), axis=list(range(1, t.shape.rank))) for t in floats.values()]
    sizes = tf.stack(sizes, axis=1) if sizes else tf.zeros_like(tf.cast(bad, tf.float32))[:, None]

    def fail():  # formatted only when the check fails
        i = tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int64)  # the first bad example
        j = tf.argmax(sizes[i], output_type=tf.int64)
        size = tf.strings.as_string(sizes[i][j], scientific=True, precision=3)
        return checks.fail_with(checks.format_message(
            "mmkeras: input '{}', example {}: the model's output is not finite (NaN or Inf) for these finite "
            "features (largest magnitude {}); send features in the range model.preprocess returns",
            [tf.gather(tf.constant(names), j), i, size]))

    done = tf.cond(tf.reduce_any(bad), checks.rarely(fail), lambda: tf.constant(True))
    return checks.after([done], outputs)
