"""Training-only perturbations of a recording, applied to its log-mel frames inside the model.

The model's audio input is the log-mel spectrogram ``[B, T, F]`` the preprocessor
computes (the waveform never reaches the model, and the benchmarks cache the
features), so each waveform perturbation is applied as its effect on the
log-mel frames: a tempo change resamples the frames in time, a pitch (vocal
tract length) change warps the mel axis, a time shift or inserted silence moves
frames and fills the gap with the clip's quietest frame, a gain adds a constant
(log magnitude), and additive noise raises the floor of every bin. Every option
is off at its default, so each can be measured alone. Inactive at inference, so
exported models are unchanged.
"""

import math

import keras
from keras import ops

from mmkeras.layers.augment import SpecAugment
from mmkeras.layers.stateless import StatelessLayer

# Probability that an example gets additive noise (the rest stay clean, as at test time).
NOISE_PROBABILITY = 0.5


def _interpolate(x, positions, axis):
    """Linear interpolation of ``x`` ``[B, T, F]`` at float ``positions`` along ``axis`` (1 or 2), clipped to
    the edges; ``positions`` is ``[B, T]`` (axis 1) or ``[B, F]`` (axis 2)."""
    size = x.shape[axis]
    positions = ops.clip(positions, 0.0, size - 1.0)
    low = ops.floor(positions)
    frac = positions - low
    low = ops.cast(low, "int32")
    high = ops.minimum(low + 1, size - 1)
    expand = 2 if axis == 1 else 1
    frac, low, high = (ops.expand_dims(t, expand) for t in (frac, low, high))
    shape = ops.shape(x)
    below = ops.take_along_axis(x, ops.broadcast_to(low, shape), axis=axis)
    above = ops.take_along_axis(x, ops.broadcast_to(high, shape), axis=axis)
    return below + ops.cast(frac, x.dtype) * (above - below)


@keras.saving.register_keras_serializable(package="mmkeras")
class AudioPerturbation(StatelessLayer):
    """Tempo, pitch, time shift, silence, gain and noise perturbation of log-mel frames ``[B, T, F]``.

    Each example draws its own perturbation; the output keeps the input's shape
    and dtype. Training only: at inference the input is returned unchanged.
    Meant for log-mel features (``n_mfcc`` unset); with ``cmvn`` the features
    are already normalised, so ``gain_db`` has no effect on them and the noise
    floor is relative to the normalised values.

    Args:
        speed: float in [0, 0.5). Max relative tempo change: the clip plays at a
            rate drawn from ``[1 - speed, 1 + speed]``.
        pitch: float in [0, 0.5). Max relative warp of the mel axis (vocal tract
            length perturbation): formants move up or down by up to this fraction.
        shift: float in [0, 1). Max time shift as a fraction of the frames; the
            frames shifted in are silence.
        silence: float in [0, 1). Max length, as a fraction of the frames, of a
            stretch of silence inserted at a random frame (the rest moves later).
        gain_db: float >= 0. Max gain change in dB, drawn in ``[-gain_db, gain_db]``.
        noise_snr_db: float or None. Additive noise at this signal-to-noise ratio
            (of the mean magnitude) on half of the examples; None: off.
        seed: int or None.

    Example:
    ```python
    aug = AudioPerturbation(speed=0.15, pitch=0.1, shift=0.1, seed=0)
    y = aug(logmel, training=True)   # same shape, perturbed
    aug(logmel) is logmel            # inference: unchanged
    ```
    """

    def __init__(self, speed=0.0, pitch=0.0, shift=0.0, silence=0.0, gain_db=0.0, noise_snr_db=None, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        for key, value, high in (("speed", speed, 0.5), ("pitch", pitch, 0.5), ("shift", shift, 1.0),
                                 ("silence", silence, 1.0)):
            if not 0.0 <= float(value) < high:
                raise ValueError(f"audio augment {key} must be in [0, {high}), got {value!r}")
        if float(gain_db) < 0.0:
            raise ValueError(f"audio augment gain_db must be >= 0, got {gain_db!r}")
        self.speed, self.pitch, self.shift, self.silence = float(speed), float(pitch), float(shift), float(silence)
        self.gain_db = float(gain_db)
        self.noise_snr_db = None if noise_snr_db is None else float(noise_snr_db)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._build_at_init()

    def _uniform(self, batch, low, high):
        return keras.random.uniform((batch, 1), low, high, seed=self.seed_generator)

    def _time_warp(self, x, batch):
        """Resamples frames for tempo, shift and inserted silence; frames from outside the clip are silent."""
        size = x.shape[1]
        t = ops.expand_dims(ops.arange(size, dtype="float32"), 0)  # [1, T]
        silent = ops.zeros_like(t) > 1.0
        if self.silence:
            width = ops.floor(self._uniform(batch, 0.0, self.silence * size + 1.0))
            start = ops.floor(self._uniform(batch, 0.0, float(size)))
            silent = ops.logical_and(t >= start, t < start + width)
            t = ops.where(t >= start + width, t - width, t)
        if self.shift:
            t = t - ops.round(self._uniform(batch, -self.shift * size, self.shift * size))
        if self.speed:
            t = t * self._uniform(batch, 1.0 - self.speed, 1.0 + self.speed)
        silent = ops.logical_or(silent, ops.logical_or(t < 0.0, t > size - 1.0))
        quiet = ops.min(x, axis=1, keepdims=True)  # the clip's floor, per bin: what silence looks like
        warped = _interpolate(x, ops.broadcast_to(t, (batch, size)), axis=1)
        return ops.where(ops.expand_dims(silent, -1), quiet, warped)

    def _pitch_warp(self, x, batch):
        size = x.shape[2]
        factor = self._uniform(batch, 1.0 - self.pitch, 1.0 + self.pitch)
        return _interpolate(x, ops.expand_dims(ops.arange(size, dtype="float32"), 0) * factor, axis=2)

    def call(self, x, training=None):
        if not training:
            return x
        dtype = x.dtype
        x = ops.cast(x, "float32")
        batch = ops.shape(x)[0]
        if self.speed or self.shift or self.silence:
            x = self._time_warp(x, batch)
        if self.pitch:
            x = self._pitch_warp(x, batch)
        if self.gain_db:  # log magnitude: a gain of g dB adds g * ln(10) / 20
            x = x + ops.expand_dims(self._uniform(batch, -self.gain_db, self.gain_db), -1) * (math.log(10.0) / 20.0)
        if self.noise_snr_db is not None:
            level = ops.mean(ops.exp(x), axis=(1, 2), keepdims=True) * 10.0 ** (-self.noise_snr_db / 20.0)
            noise = level * ops.abs(keras.random.normal(ops.shape(x), seed=self.seed_generator))
            noisy = ops.expand_dims(self._uniform(batch, 0.0, 1.0) < NOISE_PROBABILITY, -1)
            x = ops.where(noisy, ops.log(ops.exp(x) + noise), x)
        return ops.cast(x, dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "speed": self.speed, "pitch": self.pitch, "shift": self.shift,
                "silence": self.silence, "gain_db": self.gain_db, "noise_snr_db": self.noise_snr_db,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="mmkeras")
class AudioAugmentation(StatelessLayer):
    """:class:`AudioPerturbation` then :class:`~mmkeras.layers.SpecAugment` masking: the audio ``augment``
    section of a preset when it has perturbation options. Training only.

    Args:
        perturbation: dict. :class:`AudioPerturbation` options.
        spec_augment: dict or None. :class:`~mmkeras.layers.SpecAugment` options (None: no masking).
        seed: int or None. Seeds both.

    Example:
    ```python
    aug = AudioAugmentation({"speed": 0.1}, {"time_masks": 2, "time_mask_width": 6})
    y = aug(logmel, training=True)
    ```
    """

    def __init__(self, perturbation, spec_augment=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.perturbation, self.spec_augment, self.seed = dict(perturbation), spec_augment, seed
        self.perturb = AudioPerturbation(**perturbation, seed=seed, dtype=self.dtype_policy, name="perturbation")
        self.masking = (SpecAugment(**spec_augment, seed=seed, dtype=self.dtype_policy, name="spec_augment")
                        if spec_augment else None)
        self._build_at_init()

    def call(self, x, training=None):
        x = self.perturb(x, training=training)
        return self.masking(x, training=training) if self.masking is not None else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "perturbation": self.perturbation, "spec_augment": self.spec_augment,
                "seed": self.seed}


PERTURBATION_OPTIONS = frozenset(("speed", "pitch", "shift", "silence", "gain_db", "noise_snr_db"))
# These act on the mel axis or on log magnitudes: on MFCCs (a cosine transform of them) they mean nothing.
LOG_MEL_ONLY = frozenset(("pitch", "gain_db", "noise_snr_db"))


def audio_augmentation(options, name=None, mfcc=False):
    """The augmentation layer of an audio ``augment`` section: SpecAugment options alone give a
    :class:`~mmkeras.layers.SpecAugment` (as before), any perturbation option an :class:`AudioAugmentation`.

    Args:
        options: dict. The section's options.
        name: str or None. Layer name.
        mfcc: bool. The features are MFCCs (``n_mfcc`` set): ``pitch``, ``gain_db`` and
            ``noise_snr_db`` are refused (time-axis perturbations still apply).

    Raises:
        ValueError: a log-mel-only option with ``mfcc=True`` (names the options).

    Example:
    ```python
    layer = audio_augmentation({"speed": 0.1, "time_masks": 2}, name="audio_augment")
    ```
    """
    options = dict(options)
    perturbation = {k: options.pop(k) for k in list(options) if k in PERTURBATION_OPTIONS}
    if mfcc and LOG_MEL_ONLY & set(perturbation):
        raise ValueError(f"audio augment options {sorted(LOG_MEL_ONLY & set(perturbation))} act on log-mel "
                         "features; this audio config sets n_mfcc (MFCCs): remove them or n_mfcc")
    if not perturbation:
        return SpecAugment(**options, name=name)
    seed = options.pop("seed", None)
    return AudioAugmentation(perturbation, options or None, seed=seed, name=name)
