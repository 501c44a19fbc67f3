"""The base of layers without weights: built at construction, like Keras's own stateless layers."""

import keras


class StatelessLayer(keras.layers.Layer):
    """A layer with no weights, built as soon as it is constructed.

    Keras's stateless layers (``Dropout``, ``Flatten``, ``ReLU``) are ``built`` right
    after construction and its ``run_layer_test(assert_built_after_instantiation=True)``
    checks it. A subclass finishes its ``__init__`` with ``self._build_at_init()``
    (after creating any ``SeedGenerator``: the layer's state is locked then) and
    defines no ``build`` of its own.

    Example:
    ```python
    class Halve(StatelessLayer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self._build_at_init()

        def call(self, x):
            return x / 2

    assert Halve().built
    ```
    """

    def build(self, *shapes, **named_shapes):
        """Nothing to build. Accepts any shapes: one positional, or one per call argument by name (how
        Keras's ``run_layer_test`` and ``.keras`` files saved before this class build multi-input layers)."""
        del shapes, named_shapes
        self.built = True

    # Keras builds a layer at construction only while its `build` is the default one (so a
    # subclass that overrides `build` is built the usual way): this one counts as the default.
    build._is_default = True
