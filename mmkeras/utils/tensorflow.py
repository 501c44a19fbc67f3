"""Where TensorFlow is needed, and a clear error where it is missing.

The model core (towers, fusion, heads, backbone, tasks on feature tensors) is
backend-agnostic Keras and imports no TensorFlow, so models build and train under
JAX on machines without it. Raw-byte preprocessing, ``tf.data`` pipelines, export
and ``tf.distribute`` are TensorFlow graph code and say so when it is absent.
"""

import functools

INSTALL = "pip install tensorflow==2.21.0 tensorflow-text==2.21.1"


@functools.cache
def tensorflow_available():
    """True when ``import tensorflow`` works in this process."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def require_tensorflow(what):
    """Raises an ImportError saying that ``what`` needs TensorFlow, and how to get it.

    Example:
    ```python
    require_tensorflow("raw-input preprocessing")
    ```
    """
    if not tensorflow_available():
        raise ImportError(
            f"mmkeras: {what} needs TensorFlow, which cannot be imported here ({INSTALL}). Raw bytes are "
            "preprocessed, batched and exported by TensorFlow graph code; models still build and train "
            "without it on feature tensors (model(features), fit(features, labels)) under any Keras backend.")
