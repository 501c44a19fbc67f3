"""The readable part of a TensorFlow runtime error raised by an in-graph check.

An ``InvalidArgumentError`` from ``tf.debugging.Assert`` inside ``tf.data`` or a
``tf.function`` carries a traceback of the user code (file, line and the line's
source, which may itself contain the message template) before the message, and
the message appears as ``Summarized data: b"mmkeras: ..."``. Users should see
the message only.
"""

import re

_SUMMARIZED = re.compile(r"Summarized data:\s*(.*)", re.S)  # eager tf.debugging.Assert
_ASSERTION = re.compile(r"assertion failed:\s*(\[.*\])")  # the same Assert inside a graph
_NODE = re.compile(r"\s*\[\[\{\{.*$")  # "[[{{node ...}}]]" suffixes
_ERROR_LINE = re.compile(r"^(?:\w+Error|\w+Exception):\s*(.+)$")


def _unquote(text):
    text = text.strip()
    if len(text) >= 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        text = text[2:-1]
    elif len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0]:
        text = text[1:-1]
    return text.replace("\\'", "'").replace('\\"', '"')


def _assert_data(message):
    """The data items of a failed ``tf.debugging.Assert`` (message first), or None."""
    graph = _ASSERTION.search(message)
    if graph:
        items = graph.group(1)[1:-1].split("] [")
    else:
        eager = _SUMMARIZED.search(message)
        if not eager:
            return None
        items = []
        for line in eager.group(1).splitlines():
            if not line.strip() or line.startswith((" ", "\t")):
                break
            items.append(line)
    return [_unquote(item) for item in items] or None


def tf_error_message(message):
    """The message of a TF error, without traceback or source lines.

    Prefers the data of a failed ``tf.debugging.Assert`` (mmkeras' in-graph checks
    put their message there, followed by the offending values), then a line
    starting with ``mmkeras:``, then the last ``SomethingError: ...`` line, then
    the first line that is not traceback.

    Example:
    ```python
    try:
        model.preprocessor.preprocess_example(example)
    except tf.errors.InvalidArgumentError as err:
        print(tf_error_message(err.message))  # "mmkeras: input 'audio' is not a RIFF/WAVE file (...)"
    ```
    """
    text = str(message)
    data = _assert_data(text)
    if data and "mmkeras:" in data[0]:
        head = data[0][data[0].index("mmkeras:"):]
        return " ".join([head] + data[1:])
    lines = [_NODE.sub("", line).strip() for line in text.strip().splitlines()]
    lines = [line for line in lines if line]
    ours = [line for line in lines if line.startswith("mmkeras:")]
    if ours:
        return ours[0]
    errors = [m.group(1) for m in map(_ERROR_LINE.match, lines) if m and "Graph execution error" not in m.group(1)]
    if errors:
        return errors[-1]
    prose = [line for line in lines if not line.startswith(("File ", "in user code", "Detected at node", "{{"))
             and not line.endswith(":")]
    return (prose or lines or [text])[0]


def locate_bad_example(preprocessor, num_examples, values, chunk=64):
    """Finds the first example that preprocessing rejects (run only after a failure).

    Runs the preprocessor's batch function on chunks of examples, one modality
    at a time (the others empty), and example by example inside a failing chunk.

    Args:
        preprocessor: a :class:`~mmkeras.preprocessing.Preprocessor`.
        num_examples: int.
        values: callable ``(modality, indices) -> list`` of raw values (bytes or str).
        chunk: int. Examples per batch while scanning.

    Returns:
        ``(modality, index, message)`` or None when every example preprocesses.
    """
    import tensorflow as tf

    fn = preprocessor.batch_function()
    modalities = preprocessor.modalities

    def run(modality, indices):
        batch = {m: tf.constant(values(m, indices) if m == modality else [b""] * len(indices), tf.string)
                 for m in modalities}
        fn(batch)

    for start in range(0, num_examples, chunk):
        indices = list(range(start, min(num_examples, start + chunk)))
        found = []
        for m in modalities:
            try:
                run(m, indices)
                continue
            except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
                pass
            for i in indices:
                try:
                    run(m, [i])
                except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as err:
                    # Run alone, the example is example 0 of its batch: name its real index.
                    message = tf_error_message(err.message)
                    message = message.replace(f"input '{m}', example 0:", f"input '{m}', example {i}:")
                    found.append((i, m, message))
                    break
        if found:
            i, m, message = min(found, key=lambda f: f[0])
            return m, i, message
    return None
