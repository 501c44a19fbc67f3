"""Training-time augmentation that lives in the model (inactive at inference/export)."""

import keras
from keras import layers, ops

from mmkeras.layers.stateless import StatelessLayer


@keras.saving.register_keras_serializable(package="mmkeras")
class ImageAugmentation(keras.layers.Layer):
    """Random flips, translations, rotations, zooms and optional RandAugment.

    Runs only when ``training=True``; inputs are float images in any value range
    (``value_range`` is needed by RandAugment).

    Args:
        flip: str or None. ``"horizontal"``, ``"vertical"``, ``"horizontal_and_vertical"``.
        translate: float. Max shift as a fraction of height/width.
        rotate: float. Max rotation as a fraction of a full turn.
        zoom: float. Max zoom in/out fraction.
        rand_augment: bool. Apply Keras ``RandAugment`` (2 ops).
        value_range: tuple. Pixel range of the input, for RandAugment.
        seed: int or None.

    Example:
    ```python
    aug = ImageAugmentation(translate=0.1, rotate=0.05)
    y = aug(images, training=True)
    ```
    """

    def __init__(self, flip=None, translate=0.0, rotate=0.0, zoom=0.0, rand_augment=False,
                 value_range=(0.0, 1.0), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.flip, self.translate, self.rotate, self.zoom = flip, translate, rotate, zoom
        self.rand_augment, self.value_range, self.seed = rand_augment, tuple(value_range), seed
        self.ops = []
        if flip:
            self.ops.append(layers.RandomFlip(flip, seed=seed, dtype="float32"))
        if translate:
            self.ops.append(layers.RandomTranslation(translate, translate, fill_mode="constant", seed=seed,
                                                     dtype="float32"))
        if rotate:
            self.ops.append(layers.RandomRotation(rotate, fill_mode="constant", seed=seed, dtype="float32"))
        if zoom:
            self.ops.append(layers.RandomZoom(zoom, zoom, fill_mode="constant", seed=seed, dtype="float32"))
        if keras.backend.backend() == "jax":
            # Keras marks its affine-transform layers supports_jit=False for every backend (TF's
            # ImageProjectiveTransformV3 has no XLA kernel), and a model with one such layer silently
            # trains without jit (keras-team/keras-core#616). Under JAX the transform is jnp
            # map_coordinates, which jit compiles: without this the AV presets' first step took 40 s
            # op by op instead of 9 s compiled (tests/test_jax_backend.py trains them under jit).
            for op in self.ops:
                op.supports_jit = True
        if rand_augment:
            self.ops.append(layers.RandAugment(value_range=self.value_range, seed=seed, dtype="float32"))

    def build(self, input_shape):
        for op in self.ops:
            op.build(tuple(input_shape))

    def call(self, x, training=None):
        if not training:
            return x
        dtype = x.dtype
        x = ops.cast(x, "float32")  # Keras's image ops run in float32
        for op in self.ops:
            x = op(x, training=True)
        return ops.cast(x, dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(), "flip": self.flip, "translate": self.translate, "rotate": self.rotate,
            "zoom": self.zoom, "rand_augment": self.rand_augment, "value_range": self.value_range,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="mmkeras")
class SpecAugment(StatelessLayer):
    """SpecAugment-style time and frequency masking of ``[B, T, F]`` features.

    Each mask zeroes a random band of up to ``*_mask_width`` consecutive frames
    (or bins), independently per example. Training only.

    Args:
        time_masks: int. Number of time masks.
        time_mask_width: int. Max frames per time mask.
        freq_masks: int. Number of frequency masks.
        freq_mask_width: int. Max bins per frequency mask.
        seed: int or None.

    Example:
    ```python
    y = SpecAugment(time_masks=2, time_mask_width=10)(logmel, training=True)
    ```
    """

    def __init__(self, time_masks=2, time_mask_width=10, freq_masks=2, freq_mask_width=8, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.time_mask_width = time_masks, time_mask_width
        self.freq_masks, self.freq_mask_width = freq_masks, freq_mask_width
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True  # masking zeroes values, never frames: the mask passes through
        self._build_at_init()

    def _band_mask(self, batch, size, count, max_width):
        """[B, size] float mask, 0 inside ``count`` random bands."""
        keep = ops.ones((batch, size))
        positions = ops.expand_dims(ops.arange(size, dtype="float32"), 0)
        for _ in range(count):
            width = keras.random.uniform((batch, 1), 0, max_width + 1, seed=self.seed_generator)
            width = ops.floor(width)
            start = ops.floor(keras.random.uniform((batch, 1), 0, 1, seed=self.seed_generator) * (size - width + 1))
            inside = ops.logical_and(positions >= start, positions < start + width)
            keep = keep * (1.0 - ops.cast(inside, "float32"))
        return keep

    def call(self, x, training=None):
        if not training:
            return x
        batch, time, freq = ops.shape(x)[0], x.shape[1], x.shape[2]
        mask = ops.expand_dims(self._band_mask(batch, time, self.time_masks, self.time_mask_width), 2)
        mask = mask * ops.expand_dims(self._band_mask(batch, freq, self.freq_masks, self.freq_mask_width), 1)
        return x * ops.cast(mask, x.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(), "time_masks": self.time_masks, "time_mask_width": self.time_mask_width,
            "freq_masks": self.freq_masks, "freq_mask_width": self.freq_mask_width, "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="mmkeras")
class WordDropout(StatelessLayer):
    """Replaces each real token id by the unknown-token id with probability ``rate``.

    A regulariser for text towers trained from scratch (the model must not lean on
    any single word); padding (id 0) is left alone, so masks are unchanged.
    Training only.

    Args:
        rate: float in [0, 1). Probability of hiding each token.
        unknown_id: int. Id of the tokenizer's unknown token (1 for the default
            vectorizer; the ``[UNK]`` row of a WordPiece vocabulary).
        seed: int or None.

    Example:
    ```python
    ids = WordDropout(rate=0.1)(token_ids, training=True)
    ```
    """

    def __init__(self, rate=0.1, unknown_id=1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {rate!r}")
        self.rate, self.unknown_id, self.seed = float(rate), int(unknown_id), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True  # padding is never replaced: the mask passes through
        self._build_at_init()

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        hide = ops.logical_and(keras.random.uniform(ops.shape(x), seed=self.seed_generator) < self.rate,
                               ops.not_equal(x, 0))
        return ops.where(hide, ops.cast(self.unknown_id, x.dtype), x)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "unknown_id": self.unknown_id, "seed": self.seed}
