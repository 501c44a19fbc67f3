"""Mixed precision: a global switch and a scoped one used while building a model."""

import contextlib

import keras

POLICIES = (None, "float32", "mixed_float16", "mixed_bfloat16")


def _check(policy):
    if policy not in POLICIES:
        raise ValueError(f"mixed precision policy must be one of {POLICIES}, got {policy!r}")


def set_mixed_precision(policy):
    """Sets the global Keras dtype policy for models built afterwards.

    Args:
        policy: ``"mixed_float16"`` (GPU; loss scaling is added by ``compile``),
            ``"mixed_bfloat16"`` (TPU/recent GPUs/CPUs) or ``None``/``"float32"``.

    Example:
    ```python
    mmkeras.set_mixed_precision("mixed_bfloat16")
    model = mmkeras.build_model("image_small", num_classes=10)
    ```
    """
    _check(policy)
    keras.config.set_dtype_policy(policy or "float32")


@contextlib.contextmanager
def dtype_policy_scope(policy):
    """Builds under ``policy`` (None keeps the current global policy), then restores."""
    _check(policy)
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
