"""Shape propagation for composite layers: build every sub-layer in ``build()``.

Keras's layer contract wants ``build(input_shape)`` to create all of a layer's
state, so ``set_weights`` works right after it and a ``.keras`` file loads into a
built layer. Composite parts (towers, fusion blocks, heads) push the input shape
through their sub-layers with :func:`chain`, which is also how they answer
``compute_output_shape`` without running anything.
"""

import keras
from keras import ops


def chain(layers, shape, build=False):
    """Propagates ``shape`` through ``layers`` in order.

    Args:
        layers: iterable of Keras layers, applied one after the other.
        shape: tuple. Input shape of the first layer (batch axis included).
        build: bool. Build each layer that is not built yet on its input shape.

    Returns:
        tuple: the output shape of the last layer.

    Example:
    ```python
    out_shape = chain([keras.layers.Dense(8), keras.layers.Dense(4)], (None, 16), build=True)  # (None, 4)
    ```
    """
    shape = tuple(shape)
    for layer in layers:
        if build and not layer.built:
            layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


def sequence_output_spec(sequence_shape, dtype):
    """KerasTensor specs of a ``{"sequence", "mask", "pooled"}`` dict (mask is bool)."""
    b, t, d = sequence_shape
    return {
        "sequence": keras.KerasTensor((b, t, d), dtype=dtype),
        "mask": keras.KerasTensor((b, t), dtype="bool"),
        "pooled": keras.KerasTensor((b, d), dtype=dtype),
    }


def downsample_mask(mask, size):
    """``[B, T]`` bool -> ``[B, ceil(T / size)]``: a step is valid if any step it covers is.

    Matches the length of a ``padding="same"`` pooling or stride of ``size``.

    Example:
    ```python
    downsample_mask(keras.ops.array([[True, True, True, False, False]]), 2)  # [[True, True, False]]
    ```
    """
    if size == 1:
        return mask
    m = ops.expand_dims(ops.cast(mask, "float32"), -1)
    return ops.squeeze(ops.max_pool(m, pool_size=size, strides=size, padding="same"), -1) > 0


def shapes_by_name(call_named, **shapes):
    """``build()`` arguments by Keras's ``<arg>_shape`` names, or by the call's own names.

    Keras's auto-build passes ``towers_shape=...``; ``run_layer_test`` builds
    multi-input layers with the call's argument names (``towers=...``). Both work.

    Example:
    ```python
    def build(self, towers_shape=None, present_shape=None, **call_named):
        towers_shape, present_shape = shapes_by_name(call_named, towers_shape=towers_shape,
                                                     present_shape=present_shape)
    ```
    """
    unknown = set(call_named) - {k[: -len("_shape")] for k in shapes}
    if unknown:
        raise TypeError(f"build() got unexpected argument(s) {sorted(unknown)}")
    return [value if value is not None else call_named.get(key[: -len("_shape")]) for key, value in shapes.items()]
