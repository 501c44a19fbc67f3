"""Replaces an absent modality's tower output by a learned "missing" embedding."""

import keras
from keras import ops

from mmkeras.layers.shapes import sequence_output_spec, shapes_by_name
from mmkeras.layers.stateless import StatelessLayer


@keras.saving.register_keras_serializable(package="mmkeras")
class MissingModality(keras.layers.Layer):
    """Applies a presence flag ``[B]`` to a tower output dict.

    Where the modality is absent, ``pooled`` becomes a learned vector and every
    position of ``mask`` becomes false, so no fusion block reads the zeros that
    preprocessing put in place of the missing input.

    Args:
        learned: bool. Learn the missing embedding (set False when the fusion block
            reads only sequences and masks: ``pooled`` is then zeroed instead).

    Example:
    ```python
    out = MissingModality()(tower_out, present[:, 0])
    ```
    """

    def __init__(self, learned=True, **kwargs):
        super().__init__(**kwargs)
        self.learned = learned
        # The tower's mask travels explicitly in the dict; Keras masks are not used.
        self.supports_masking = False

    def build(self, tower_out_shape=None, present_shape=None, **call_named):
        tower_out_shape, _ = shapes_by_name(call_named, tower_out_shape=tower_out_shape, present_shape=present_shape)
        if self.learned:
            dim = tower_out_shape["pooled"][-1]
            self.embedding = self.add_weight(name="embedding", shape=(dim,), initializer="zeros")

    def call(self, tower_out, present):
        flag = ops.cast(present, "bool")
        pooled = tower_out["pooled"]
        missing = ops.zeros_like(pooled)
        if self.learned:
            missing = missing + ops.cast(self.embedding, pooled.dtype)
        return {
            "sequence": tower_out["sequence"],
            "mask": ops.logical_and(tower_out["mask"], ops.expand_dims(flag, 1)),
            "pooled": ops.where(ops.expand_dims(flag, 1), pooled, missing),
        }

    def compute_mask(self, *args, **kwargs):
        return None

    def compute_output_shape(self, tower_out_shape, present_shape=None):
        return dict(tower_out_shape)

    def compute_output_spec(self, tower_out, present):
        return sequence_output_spec(tuple(tower_out["sequence"].shape), tower_out["sequence"].dtype)

    def get_config(self):
        return {**super().get_config(), "learned": self.learned}


@keras.saving.register_keras_serializable(package="mmkeras")
class ModalityDropout(StatelessLayer):
    """Training only: drops each present modality with probability ``rate``.

    An example never loses all of its modalities: where every present one would
    be dropped, it keeps its original presence flags.

    Args:
        rate: float. Drop probability per present modality.
        seed: int or None. Seed of the dropout draws.

    Example:
    ```python
    present = ModalityDropout(0.3)(present, training=True)
    ```
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._build_at_init()

    def call(self, present, training=None):
        if not training or self.rate <= 0:
            return present
        keep = ops.cast(
            keras.random.uniform(ops.shape(present), seed=self.seed_generator) >= self.rate, present.dtype
        )
        dropped = present * keep
        any_left = ops.sum(dropped, axis=1, keepdims=True) > 0
        return ops.where(any_left, dropped, present)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
