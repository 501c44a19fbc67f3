"""Named checks inside the TensorFlow graph, and decoding that cannot crash a request.

Every check here fails with ``INVALID_ARGUMENT`` and a message that starts with
``mmkeras: input '<name>'`` and, for a batch, names the first bad example, so a
client (or a TF Serving log) can tell which field of which example to fix.
TensorFlow wraps the message of a failed assertion as ``assertion failed: [...]``
and escapes quotes (``input \\'image\\'``).

:func:`guarded` runs decode ops whose own errors ("Invalid PNG data",
"jpeg::Uncompress failed") cannot be caught in a graph: inside a one-element
``tf.data`` pipeline with ``ignore_errors``, which turns an error into an empty
result that the caller reports with a named message. It uses core ops only, so
TF Serving runs it.
"""

import tensorflow as tf

# Cheaper one-shot pipelines: no graph rewrites or autotuning for a single element.
_OPTIONS = tf.data.Options()
_OPTIONS.experimental_optimization.apply_default_optimizations = False
_OPTIONS.autotune.enabled = False


def rarely(fn):
    """``fn`` as a graph function TensorFlow does not inline, for branches that seldom run.

    A branch of ``tf.cond`` that is not taken still costs time per call when its
    ops are inlined into the graph (each one passes on a "dead" value); behind a
    call it is one op. Used for failure messages and the JPEG/GIF preparation.
    """
    return tf.function(fn, autograph=False, experimental_attributes={"_noinline": True})


def prefix(name, example=None):
    """``mmkeras: input '<name>'`` (and ``, example {}`` with a slot for the index)."""
    name = str(name).replace("{", "(").replace("}", ")")  # braces are message slots
    return f"mmkeras: input '{name}'" + (", example {}" if example else "")


def fail_with(message):
    """A ``False`` bool tensor that raises ``message`` (a string tensor) when it is computed."""
    with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
        return tf.constant(False)


def format_message(template, values):
    """``template`` with each ``{}`` replaced by a scalar tensor (strings unquoted, unlike tf.strings.format)."""
    pieces = template.split("{}")
    if len(pieces) != len(values) + 1:
        raise ValueError(f"message template {template!r} has {len(pieces) - 1} slots for {len(values)} values")
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:]):
        value = tf.convert_to_tensor(value)
        out += [value if value.dtype == tf.string else tf.strings.as_string(value), piece]
    return tf.strings.join(out)


def check_batch(bad, name, template, *values):
    """Asserts that no entry of the ``[B]`` bool ``bad`` is set, naming the first bad example.

    Args:
        bad: ``[B]`` bool tensor.
        name: the input's name.
        template: what is wrong, after ``mmkeras: input '<name>', example <i>: ``;
            ``{}`` slots take the first bad example's entry of each of ``values``.
        *values: ``[B]`` tensors.

    Returns:
        A scalar bool tensor to use as a control dependency.

    Example:
    ```python
    ok = check_batch(tf.strings.length(x) > 10, "text", "{} bytes, more than 10", tf.strings.length(x))
    ```
    """
    def fail():
        i = tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int64)  # the first True
        return fail_with(format_message(prefix(name, example=True) + ": " + template,
                                        [i] + [tf.gather(v, i) for v in values]))

    return tf.cond(tf.reduce_any(bad), rarely(fail), lambda: tf.constant(True))


def check_stages(name, stages):
    """One check for several kinds of problem in a ``[B]`` batch, reported in order.

    Cheaper than chaining :func:`check_batch` calls (one conditional in the graph,
    not one per kind), with the same message: the first kind of problem that any
    example has, for the first example that has it.

    Args:
        name: the input's name.
        stages: list of ``(bad, template, values)`` as :func:`check_batch` takes them.

    Returns:
        A scalar bool tensor to use as a control dependency.
    """
    kinds = tf.stack([tf.reduce_any(bad) for bad, _, _ in stages])

    def fail():
        messages = []
        for bad, template, values in stages:
            i = tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int64)
            messages.append(format_message(prefix(name, example=True) + ": " + template,
                                           [i] + [tf.gather(v, i) for v in values]))
        return fail_with(tf.gather(tf.stack(messages), tf.argmax(tf.cast(kinds, tf.int32))))

    return tf.cond(tf.reduce_any(kinds), rarely(fail), lambda: tf.constant(True))


def check_first(stages):
    """One check for several scalar conditions; the message of the first one that holds is raised.

    Messages are only formatted when the check fails: ``tf.debugging.Assert``
    evaluates its data on every run, and formatting strings was a measurable share
    of the per-example cost in ``tf.data``.

    Args:
        stages: list of ``(bad, template, values)``: a scalar bool, a complete message
            (starting with :func:`prefix`) and scalar tensors for its ``{}`` slots.

    Returns:
        A scalar bool tensor to use as a control dependency.
    """
    kinds = tf.stack([bad for bad, _, _ in stages])

    def fail():
        messages = tf.stack([format_message(template, list(values)) for _, template, values in stages])
        return fail_with(tf.gather(messages, tf.argmax(tf.cast(kinds, tf.int32))))

    return tf.cond(tf.reduce_any(kinds), rarely(fail), lambda: tf.constant(True))


def check_example(name, index, stages):
    """:func:`check_first` for one example of input ``name`` (``index``: its position, or None).

    Each stage's template is what follows ``mmkeras: input '<name>'[, example <i>]: ``.
    """
    head = prefix(name, example=index is not None) + ": "
    lead = [] if index is None else [index]
    return check_first([(bad, head + template, lead + list(values)) for bad, template, values in stages])


def after(checks, structure):
    """``structure`` (tensors, nested) gated on ``checks`` (run first)."""
    with tf.control_dependencies(list(checks)):
        return tf.nest.map_structure(tf.identity, structure)


def guarded(fn, args, fallback):
    """Runs ``fn(*args)`` so that an error inside it gives ``(False, fallback)`` instead of failing.

    Args:
        fn: graph function of the tensors in ``args``; returns a structure of tensors.
        args: tuple of tensors.
        fallback: a structure like ``fn``'s result (compatible shapes) returned on error.

    Returns:
        ``(ok, result)``: scalar bool and ``fn``'s result, or ``fallback`` when it failed.
    """
    ok = tf.data.Dataset.from_tensors(tuple(args)).map(lambda *a: (True, fn(*a))).ignore_errors()
    failed = tf.data.Dataset.from_tensors((False, fallback))
    return ok.concatenate(failed).take(1).with_options(_OPTIONS).get_single_element()


def survivors(fn, args, size):
    """Which rows of ``args`` (``[B, ...]`` tensors) ``fn`` processes without an error.

    Runs ``fn`` on each row in a ``tf.data`` pipeline that drops failing rows; used
    only after :func:`guarded` failed on a whole batch, to name the bad example.
    Return everything ``fn`` computes: TensorFlow prunes work whose results are
    unused, and a pruned decode cannot fail.

    Returns:
        ``[B]`` bool tensor, True where ``fn(row)`` succeeded.
    """
    index = tf.range(size, dtype=tf.int64)
    rows = tf.data.Dataset.from_tensor_slices((index, *args))
    kept = rows.map(lambda i, *a: (i, fn(*a))).ignore_errors().map(lambda i, _: i).batch(1 << 30)
    kept = kept.concatenate(tf.data.Dataset.from_tensors(tf.zeros([0], tf.int64)))
    good = kept.take(1).with_options(_OPTIONS).get_single_element()
    shape = tf.reshape(tf.cast(size, tf.int64), [1])
    return tf.scatter_nd(good[:, None], tf.ones_like(good, tf.int32), shape) > 0
