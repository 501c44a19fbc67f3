"""Training-only perturbations of decoded waveforms (the audio option ``waveform_augment``), in graph ops.

They run between decoding/resampling and the log-mel (or MFCC) features, on the
fixed-length clip ``[num_samples]`` whose first ``length`` samples hold the
recording (the rest is zero padding), and return the same shape with the new
valid length (so per-utterance CMVN still counts only the frames the clip fills).
One option, ``vtlp``, acts a step later: it warps the frequency axis of the
clip's spectrum before the mel filterbank (:func:`warp_frequencies`).
:class:`mmkeras.layers.AudioPerturbation` approximates the same perturbations on
the log-mel frames inside the model; these act on the samples themselves.

Every draw is a stateless random op on the example's own ``[2]`` seed, so the
same seed gives the same output whatever the batch; the training pipeline
(:func:`mmkeras.training.shuffle.epoch_example_seeds`) gives each example a new
seed every epoch. Serving, evaluation and predict never call this module: their
graph is the same with or without the option.
"""

import math

import tensorflow as tf

from mmkeras.layers.audio_augment import NOISE_PROBABILITY
from mmkeras.modalities.features import WAVEFORM_AUGMENT_OPTIONS, check_waveform_augment
from mmkeras.preprocessing.audio import resample

# Speed and pitch factors are rounded to 1 / RATE_STEPS: `resample` takes integer rates.
RATE_STEPS = 100000
# The frame of the pitch shift's phase-vocoder time stretch (Hann window, quarter-frame hop).
STRETCH_FRAME_S = 0.032
# Order of the scalar draws in one example's uniform vector.
_DRAWS = ("speed", "pitch", "shift", "gain_db", "silence_width", "silence_start")


def draw_parameters(seed, options, num_samples):
    """The perturbation one example draws from its seed (what :func:`perturb_waveform` applies).

    Args:
        seed: ``[2]`` int32/int64 tensor, the example's seed.
        options: the ``waveform_augment`` dict (checked here).
        num_samples: int. The clip length in samples (shift and silence are fractions of it).

    Returns:
        dict of scalar tensors: ``speed`` and ``pitch`` (factors, 1.0 when off), ``shift``
        (samples, int32; positive moves the onset later), ``gain_db``, ``silence_width``
        and ``silence_start`` (a fraction of the clip's length), ``noisy`` (bool: this example
        gets the noise; :data:`~mmkeras.layers.audio_augment.NOISE_PROBABILITY` of them do).

    Example:
    ```python
    draw_parameters(tf.constant([0, 7]), {"gain_db": 6.0}, 8000)["gain_db"]  # in [-6, 6]
    ```
    """
    options = check_waveform_augment(options) or {key: 0.0 for key in WAVEFORM_AUGMENT_OPTIONS}
    u = tf.random.stateless_uniform([len(_DRAWS)], seed=seed)
    coin = tf.random.stateless_uniform([], seed=_stream_seed(seed, 0))
    signed = dict(zip(_DRAWS, tf.unstack(2.0 * u - 1.0)))
    return {
        "speed": 1.0 + options["speed"] * signed["speed"],
        "pitch": 1.0 + options["pitch"] * signed["pitch"],
        "shift": tf.cast(tf.round(options["shift"] * num_samples * signed["shift"]), tf.int32),
        "gain_db": options["gain_db"] * signed["gain_db"],
        "silence_width": tf.cast(tf.floor(options["silence"] * num_samples * u[_DRAWS.index("silence_width")]),
                                 tf.int32),
        "silence_start": u[_DRAWS.index("silence_start")],
        "noisy": coin < NOISE_PROBABILITY,
    }


def _stream_seed(seed, stream):
    """Seeds apart from the scalar draws' (``stream`` 0: whether the noise, 1: its samples, 2: the VTLP factor)."""
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), len(_DRAWS) + stream)


# VTLP (Jaitly & Hinton 2013): frequencies below this fraction of Nyquist scale by the warp factor; above
# it, a second linear piece brings Nyquist back onto Nyquist, so no band leaves the spectrum.
VTLP_BOUNDARY = 0.8


def vtlp_factors(seeds, width):
    """One warp factor per example, uniform in ``[1 - width, 1 + width]``, from each example's own seed.

    Args:
        seeds: ``[B, 2]`` int, the examples' seeds (as :func:`perturb_batch`'s).
        width: float in [0, 0.5).

    Returns:
        ``[B]`` float32.
    """
    def one(seed):
        return tf.random.stateless_uniform([], seed=_stream_seed(seed, 2), minval=-1.0, maxval=1.0)

    return 1.0 + width * tf.map_fn(one, seeds, fn_output_signature=tf.float32)


def warp_frequencies(spectrum, factors):
    """Vocal tract length perturbation: each example's spectrum with its frequency axis warped.

    Output bin ``k`` (of ``F`` bins, Nyquist at ``F - 1``) reads the input at
    ``k / factor`` up to ``VTLP_BOUNDARY`` of Nyquist, then along a straight line
    to Nyquist (linear interpolation between bins). A factor above 1 moves the
    formants up, as a shorter vocal tract; 1 leaves the spectrum unchanged.

    Args:
        spectrum: ``[B, ..., F]`` float32, a magnitude or power spectrum (frequency last).
        factors: ``[B]`` float32, one warp factor per example (:func:`vtlp_factors`).

    Returns:
        ``[B, ..., F]`` float32.

    Example:
    ```python
    warped = warp_frequencies(magnitude, vtlp_factors(seeds, 0.1))  # magnitude [B, frames, bins]
    ```
    """
    shape = tf.shape(spectrum)
    bins = spectrum.shape[-1]
    nyquist = float(bins - 1)
    k = tf.range(bins, dtype=tf.float32)[None, :]
    factors = tf.cast(factors, tf.float32)[:, None]
    boundary = VTLP_BOUNDARY * nyquist
    above = boundary / factors + (k - boundary) * (nyquist - boundary / factors) / (nyquist - boundary)
    source = tf.clip_by_value(tf.where(k <= boundary, k / factors, above), 0.0, nyquist)  # [B, F]
    low = tf.floor(source)
    frac = (source - low)[..., None]
    low = tf.cast(low, tf.int32)
    # The interpolation as one [F, F] matrix per example: a batched matmul took 2.0 ms a batch of 64 clips
    # (61 frames, 129 bins) where two batched gathers took 5.0 ms, the same values.
    matrix = tf.one_hot(low, bins) * (1.0 - frac) + tf.one_hot(tf.minimum(low + 1, bins - 1), bins) * frac
    warped = tf.einsum("bnf,bkf->bnk", tf.reshape(spectrum, [shape[0], -1, bins]), matrix)
    return tf.reshape(warped, shape)


def _fit(x, num_samples):
    """``x`` zero-padded or cut to ``num_samples``."""
    x = x[:num_samples]
    return tf.pad(x, [[0, num_samples - tf.shape(x)[0]]])


def _move(x, source, valid):
    """``out[t] = x[source[t]]`` where ``valid[t]``, else 0 (silence); ``x`` may be empty."""
    silent = tf.shape(x)[0]  # the index of the zero appended below
    return tf.gather(tf.concat([x, [0.0]], 0), tf.where(valid, source, silent))


def _resample_by(clip, factor):
    """``clip`` played ``factor`` times faster: ``len / factor`` samples, pitch times ``factor``."""
    return resample(clip, RATE_STEPS, tf.cast(tf.round(RATE_STEPS / factor), tf.int64))


def _stretch(y, length, sample_rate):
    """Phase-vocoder time stretch of ``y`` to ``length`` samples, the pitch kept.

    STFT of Hann frames of :data:`STRETCH_FRAME_S` at a quarter-frame hop; output
    frame ``k`` takes the magnitude interpolated at input frame ``k * len(y) / length``
    and a phase advanced by each bin's measured frequency (as librosa's
    ``phase_vocoder``); an inverse STFT at the same hop gives the samples.
    """
    hop = max(int(round(STRETCH_FRAME_S * sample_rate / 4)), 1)
    frame = 4 * hop
    spec = tf.signal.stft(tf.pad(y, [[frame // 2, frame // 2]]), frame, hop, frame)  # centred frames
    frames, bins = tf.shape(spec)[0], frame // 2 + 1
    spec = tf.concat([spec, tf.zeros([2, bins], spec.dtype)], 0)  # a frame past the end reads silence
    rate = tf.cast(tf.size(y), tf.float32) / tf.cast(tf.maximum(length, 1), tf.float32)
    steps = tf.minimum(tf.cast(tf.range(length // hop + 1), tf.float32) * rate, tf.cast(frames, tf.float32))
    low = tf.cast(tf.floor(steps), tf.int32)
    alpha = (steps - tf.floor(steps))[:, None]
    before, after = tf.gather(spec, low), tf.gather(spec, low + 1)
    magnitude = (1.0 - alpha) * tf.abs(before) + alpha * tf.abs(after)
    advance = tf.constant(2.0 * math.pi * hop / frame, tf.float32) * tf.range(bins, dtype=tf.float32)
    deviation = tf.math.angle(after) - tf.math.angle(before) - advance
    deviation -= 2.0 * math.pi * tf.round(deviation / (2.0 * math.pi))
    phase = tf.math.angle(spec[0]) + tf.cumsum(advance + deviation, axis=0, exclusive=True)
    stretched = tf.complex(magnitude * tf.cos(phase), magnitude * tf.sin(phase))
    out = tf.signal.inverse_stft(stretched, frame, hop, frame, window_fn=tf.signal.inverse_stft_window_fn(hop))
    return out[frame // 2:frame // 2 + length]


def perturb_waveform(samples, length, seed, options, sample_rate):
    """Perturbs one decoded clip: speed, pitch, inserted silence, time shift, gain, then noise.

    Args:
        samples: ``[num_samples]`` float32, the recording in the first ``length``
            samples, zero padding after.
        length: int scalar tensor, the number of valid samples.
        seed: ``[2]`` int tensor, the example's seed (see :func:`draw_parameters`).
        options: dict. ``speed`` (s in [0, 0.5): the clip is resampled to play
            at a rate drawn in [1 - s, 1 + s], so tempo and pitch change together,
            as Kaldi's speed perturbation; then cut or padded to the clip length),
            ``pitch`` (p in [0, 0.5): pitch times a factor in [1 - p, 1 + p], duration
            kept: resampled by that factor, then time-stretched back by a phase vocoder
            on 32 ms Hann frames, which smears transients a little), ``shift``
            (in [0, 1): the recording moves by up to this fraction of the clip, either
            way; silence fills the gap and what leaves the clip is lost),
            ``silence`` (in [0, 1): a silent stretch of up to this fraction of the clip
            is inserted at a random point of the recording, the rest moves later),
            ``gain_db`` (g >= 0: gain drawn in [-g, g] dB; no clipping) and
            ``noise_snr_db`` (white Gaussian noise at this SNR relative to the clip's
            own mean power over its valid samples, so a silent clip stays silent, on
            half of the examples: the rest stay clean, as at test time, and as
            ``AudioPerturbation``'s noise; None: off). Zero / None is off: that op is
            not in the graph.
        sample_rate: int. Of ``samples`` (sets the pitch shift's frame).

    Returns:
        ``(samples [num_samples] float32, length int32)``: the perturbed clip and
        its new valid length.

    Example:
    ```python
    x, n = perturb_waveform(tf.sin(tf.range(8000.0) / 5.0), 8000, tf.constant([0, 1]), {"speed": 0.2}, 8000)
    ```
    """
    options = check_waveform_augment(options)
    num_samples = int(samples.shape[0]) if samples.shape[0] is not None else tf.shape(samples)[0]
    x, length = samples, tf.cast(length, tf.int32)
    if options is None:
        return x, length
    d = draw_parameters(seed, options, num_samples)
    t = tf.range(tf.shape(x)[0])
    if options["speed"]:
        y = _resample_by(x[:length], d["speed"])
        x, length = _fit(y, num_samples), tf.minimum(tf.size(y), num_samples)
    if options["pitch"]:
        y = _stretch(_resample_by(x[:length], d["pitch"]), length, sample_rate)
        x = _fit(y, num_samples)
    if options["silence"]:
        start = tf.cast(tf.floor(d["silence_start"] * tf.cast(length + 1, tf.float32)), tf.int32)
        start = tf.minimum(start, length)
        source = tf.where(t < start, t, t - d["silence_width"])
        keep = tf.logical_or(t < start, t >= start + d["silence_width"])
        x = _move(x, source, tf.logical_and(keep, source < length))
        length = tf.minimum(length + d["silence_width"], num_samples)
    if options["shift"]:
        source = t - d["shift"]
        x = _move(x, source, tf.logical_and(source >= 0, source < length))
        length = tf.clip_by_value(length + d["shift"], 0, num_samples)
    if options["gain_db"]:
        x = x * tf.pow(10.0, d["gain_db"] / 20.0)
    if options["noise_snr_db"] is not None:
        valid = tf.cast(t < length, tf.float32)
        power = tf.reduce_sum(tf.square(x) * valid) / tf.cast(tf.maximum(length, 1), tf.float32)
        scale = tf.sqrt(power * 10.0 ** (-options["noise_snr_db"] / 10.0))  # 0 for silence: no NaN
        scale = tf.where(d["noisy"], scale, 0.0)
        x = x + scale * valid * tf.random.stateless_normal(tf.shape(x), seed=_stream_seed(seed, 1))
    return tf.ensure_shape(x, samples.shape), length


def perturb_batch(samples, length, seeds, options, sample_rate):
    """:func:`perturb_waveform` on every example of a batch, each with its own seed.

    Args:
        samples: ``[B, num_samples]`` float32.
        length: ``[B]`` int, the valid samples of each.
        seeds: ``[B, 2]`` int, one seed per example.
        options: the ``waveform_augment`` dict.
        sample_rate: int.

    Returns:
        ``(samples [B, num_samples] float32, length [B] int64)``.

    Example:
    ```python
    x, n = perturb_batch(samples, length, seeds, {"noise_snr_db": 10.0}, 8000)
    ```
    """
    num_samples = samples.shape[-1]

    def one(args):
        x, n, seed = args
        x, n = perturb_waveform(x, n, seed, options, sample_rate)
        return x, tf.cast(n, tf.int64)

    spec = (tf.TensorSpec([num_samples], tf.float32), tf.TensorSpec([], tf.int64))
    return tf.map_fn(one, (samples, tf.cast(length, tf.int64), seeds), fn_output_signature=spec)
