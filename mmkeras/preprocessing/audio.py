"""In-graph audio preprocessing: raw WAV bytes -> fixed-size log-mel / MFCC features.

Everything here is pure TensorFlow graph code, so it runs
per example inside `tf.data` and inside an exported SavedModel (TF Serving).
`tf.audio.decode_wav` only reads 16-bit PCM, so RIFF/WAVE is parsed by hand.

Hostile files cost bounded time and memory (limits in `mmkeras.modalities.limits`):
the chunk walk stops after `max_wav_chunks` chunks, header fields are read as
unsigned bytes into int64 (a sample rate of 2**31 or more never wraps), and the
sample rate, the bytes and the samples read are capped before anything is decoded.
"""

import functools

import numpy as np
import tensorflow as tf

from mmkeras.codecs import WAVE_FORMAT_EXTENSIBLE as _EXTENSIBLE
from mmkeras.codecs import WAVE_FORMAT_IEEE_FLOAT as _FLOAT
from mmkeras.codecs import WAVE_FORMAT_PCM as _PCM
from mmkeras.modalities.features import check_frontend, check_waveform_augment
from mmkeras.modalities.features import frame_params as _frame_params
from mmkeras.modalities.limits import AUDIO_LIMITS
from mmkeras.preprocessing import checks

# The input name in error messages when a caller names none: this module is the audio modality's graph code.
INPUT_NAME = "audio"

# Added to the variance before the square root: a steady tone (variance ~0 in every bin) stays finite.
CMVN_EPSILON = 1e-3


def _length(data):
    return tf.cast(tf.strings.length(data), tf.int64)


def _substr_safe(data, pos, length):
    """`tf.strings.substr` that gives b"" instead of failing when `pos` is past the end."""
    pos = tf.minimum(tf.cast(pos, tf.int64), _length(data))
    return tf.strings.substr(data, pos, tf.cast(length, tf.int64))


def _read_uint(data, pos, nbytes):
    """Little-endian unsigned int of `nbytes` at `pos` as int64 (missing bytes read as 0)."""
    raw = tf.strings.substr(tf.strings.join([_substr_safe(data, pos, nbytes), b"\0" * nbytes]),
                            0, nbytes)
    digits = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)
    return tf.reduce_sum(digits * (256 ** tf.range(nbytes, dtype=tf.int64)))


def _find_chunks(data, max_chunks):
    """Walks at most `max_chunks` RIFF chunks from offset 12; finds 'fmt ' and 'data'.

    Returns:
        ``(fmt_found, fmt_pos, fmt_size, data_found, data_pos, data_size, walked_all)``;
        ``walked_all`` is False when the walk stopped at `max_chunks` with a chunk missing.
    """
    length = _length(data)
    zero, false = tf.constant(0, tf.int64), tf.constant(False)

    def cond(steps, offset, fmt_found, fmt_pos, fmt_size, data_found, data_pos, data_size):
        both = tf.logical_and(fmt_found, data_found)
        return tf.logical_and(tf.logical_and(offset + 8 <= length, tf.logical_not(both)), steps < max_chunks)

    def body(steps, offset, fmt_found, fmt_pos, fmt_size, data_found, data_pos, data_size):
        chunk_id = tf.strings.substr(data, offset, 4)
        size = _read_uint(data, offset + 4, 4)
        is_fmt = tf.logical_and(tf.equal(chunk_id, b"fmt "), tf.logical_not(fmt_found))
        is_data = tf.logical_and(tf.equal(chunk_id, b"data"), tf.logical_not(data_found))
        return (steps + 1,
                offset + 8 + size + size % 2,  # Chunks are padded to even sizes.
                tf.logical_or(fmt_found, is_fmt),
                tf.where(is_fmt, offset + 8, fmt_pos),
                tf.where(is_fmt, size, fmt_size),
                tf.logical_or(data_found, is_data),
                tf.where(is_data, offset + 8, data_pos),
                tf.where(is_data, size, data_size))

    state = (zero, tf.constant(12, tf.int64), false, zero, zero, false, zero, zero)
    steps, offset, *found = tf.while_loop(cond, body, state)
    walked_all = tf.logical_or(steps < max_chunks, tf.logical_or(offset + 8 > length,
                                                                   tf.logical_and(found[0], found[3])))
    return (*found, walked_all)


def _decode_wav(wav_bytes, name, max_duration_s=None, index=None, limits=None):
    """`decode_wav`, optionally decoding only the first `max_duration_s` seconds.

    ``index`` (the example's position in its batch) goes into error messages;
    ``limits`` are the audio limits (default: `mmkeras.modalities.limits.AUDIO_LIMITS`).
    """
    limits = {**AUDIO_LIMITS, **(limits or {})}
    data = tf.convert_to_tensor(wav_bytes, tf.string)
    riff = tf.logical_and(tf.equal(_substr_safe(data, 0, 4), b"RIFF"),
                          tf.equal(_substr_safe(data, 8, 4), b"WAVE"))
    fmt_found, fmt_pos, fmt_size, data_found, data_pos, data_size, walked_all = _find_chunks(
        data, limits["max_wav_chunks"])

    # One read of the 26 header bytes, then plain arithmetic per field (cheaper
    # per example than a substring read per field). Unsigned fields land in int64.
    header = tf.strings.substr(tf.strings.join([_substr_safe(data, fmt_pos, 26), b"\0" * 26]), 0, 26)
    header = tf.cast(tf.io.decode_raw(header, tf.uint8), tf.int64)

    def field(offset, nbytes):
        return tf.reduce_sum(header[offset:offset + nbytes] * (256 ** np.arange(nbytes, dtype=np.int64)))

    audio_format, channels, sample_rate, bits = field(0, 2), field(2, 2), field(4, 4), field(14, 2)
    # WAVE_FORMAT_EXTENSIBLE keeps the real format code in the sub-format GUID.
    audio_format = tf.where(tf.logical_and(tf.equal(audio_format, _EXTENSIBLE), fmt_size >= 26),
                            field(24, 2), audio_format)
    encodings = [(_PCM, 8), (_PCM, 16), (_PCM, 24), (_PCM, 32), (_FLOAT, 32), (_FLOAT, 64)]
    code = tf.constant(-1, tf.int64)
    for i, (f, b) in enumerate(encodings):
        match = tf.logical_and(tf.equal(audio_format, f), tf.equal(bits, b))
        code = tf.where(match, tf.constant(i, tf.int64), code)

    # Values are clamped to their limits as well as checked, so nothing below can
    # allocate more than a limit allows, whichever op runs first.
    rate = tf.clip_by_value(sample_rate, 1, limits["max_sample_rate"])
    channels_read = tf.maximum(channels, 1)
    frame_bytes = tf.maximum(channels_read * (bits // 8), 1)
    # Streamed WAVs often declare a data size larger than the file.
    available = tf.maximum(_length(data) - data_pos, 0)
    num_frames = tf.minimum(data_size, available) // frame_bytes
    if max_duration_s is not None:
        # Only decode what is needed: long clips then cost no more than short ones.
        wanted = tf.math.ceil(max_duration_s * tf.cast(rate, tf.float64))
        num_frames = tf.minimum(num_frames, tf.cast(wanted, tf.int64))
    samples_read = num_frames * channels_read
    max_samples = limits["max_samples"]
    done = checks.check_example(name, index, [
        (~riff, "not a RIFF/WAVE file (expected bytes starting with RIFF....WAVE; got {} bytes)",
         [tf.strings.length(data)]),
        (~walked_all, f"no 'fmt ' and 'data' chunks within the limit max_wav_chunks={limits['max_wav_chunks']}",
         []),
        (~(fmt_found & data_found), "malformed WAV file: no 'fmt ' or no 'data' chunk", []),
        (code < 0, "unsupported WAV encoding (format {}, {} bits); expected PCM (format 1) with 8/16/24/32 bits "
                   "or IEEE float (format 3) with 32/64 bits", [audio_format, bits]),
        ((channels <= 0) | (sample_rate <= 0), "malformed WAV header ({} channels, sample rate {})",
         [channels, sample_rate]),
        (sample_rate > limits["max_sample_rate"],
         f"WAV sample rate {{}} Hz is above the limit max_sample_rate={limits['max_sample_rate']}", [sample_rate]),
        (samples_read > max_samples, f"WAV needs {{}} samples ({{}} frames x {{}} channels), more than the limit "
                                     f"max_samples={max_samples}", [samples_read, num_frames, channels]),
    ])
    with tf.control_dependencies([done]):
        num_frames = tf.minimum(num_frames, max_samples // channels_read)
        payload = _substr_safe(data, data_pos, num_frames * frame_bytes)

    def int24():
        b = tf.reshape(tf.cast(tf.io.decode_raw(payload, tf.uint8), tf.int32), [-1, 3])
        # Put the 3 bytes in the top of an int32, then shift back to sign-extend.
        v = tf.reduce_sum(b * tf.constant([1 << 8, 1 << 16, 1 << 24]), axis=1)
        v = tf.bitwise.right_shift(v, 8)
        return tf.cast(v, tf.float32) / 2.0 ** 23

    def raw(dtype, offset=0.0, scale=1.0):
        def fn():
            v = tf.cast(tf.io.decode_raw(payload, dtype, little_endian=True), tf.float32)
            return (v - offset) / scale
        return fn

    branches = [raw(tf.uint8, 128.0, 128.0), raw(tf.int16, 0.0, 2.0 ** 15), int24,
                raw(tf.int32, 0.0, 2.0 ** 31), raw(tf.float32), raw(tf.float64)]
    flat = tf.switch_case(tf.cast(tf.maximum(code, 0), tf.int32), branches)
    frames = tf.reshape(flat, tf.stack([-1, tf.cast(channels_read, tf.int32)]))
    samples = tf.reduce_mean(frames, axis=1)
    # Float WAVs can hold anything; keep to the documented finite [-1, 1].
    samples = tf.clip_by_value(tf.where(tf.math.is_finite(samples), samples, 0.0), -1.0, 1.0)
    samples.set_shape([None])
    return samples, tf.cast(rate, tf.int32)


def decode_wav(wav_bytes, name=INPUT_NAME, limits=None):
    """Decodes a RIFF/WAVE file to mono float samples, in graph ops.

    Supports PCM 8-bit (unsigned), 16, 24 and 32-bit (signed) and IEEE float 32
    and 64-bit, plain or WAVE_FORMAT_EXTENSIBLE. Channels are averaged to mono.
    Unknown chunks (LIST, fact, ...) are skipped, and a data size larger than the
    file (streamed WAVs) is clamped to the bytes present. PCM is scaled by
    1 / 2**(bits - 1), like libsndfile.

    Args:
        wav_bytes: Scalar `tf.string` holding the WAV file.
        name: Name of the input, used in error messages.
        limits: dict or None. Audio limits (``max_wav_chunks``, ``max_samples``,
            ``max_sample_rate``; defaults in `mmkeras.modalities.limits`).

    Returns:
        `(samples, sample_rate)`: `float32` `[N]` in [-1, 1] (N may be 0) and an
        `int32` scalar.

    Raises:
        tf.errors.InvalidArgumentError: (when run) for bytes that are not a WAV
            file, use an unsupported encoding or exceed a limit; the message
            starts with ``mmkeras: input '<name>'``.

    Example:
        >>> wav = encode_wav(np.zeros(800), 8000)
        >>> samples, rate = decode_wav(tf.constant(wav))
        >>> samples.shape, int(rate)
        (TensorShape([800]), 8000)
    """
    return _decode_wav(wav_bytes, name, limits=limits)


def resample(samples, orig_rate, target_rate):
    """Band-limited FFT resampling of a 1-D signal, like `scipy.signal.resample`.

    The output has `round(N * target_rate / orig_rate)` samples. The signal is
    treated as periodic, so expect slight ringing at the very edges.

    Args:
        samples: `float32` `[N]`.
        orig_rate: Sample rate of `samples` (Python int or int tensor).
        target_rate: Wanted sample rate (Python int or int tensor).

    Returns:
        `float32` `[M]` resampled signal; `samples` unchanged when the rates match.

    Example:
        >>> resample(tf.zeros([44100]), 44100, 16000).shape
        TensorShape([16000])
    """
    samples = tf.convert_to_tensor(samples, tf.float32)
    orig = tf.cast(orig_rate, tf.int64)
    target = tf.cast(target_rate, tf.int64)
    n = tf.size(samples, out_type=tf.int64)
    n_out = (n * target + orig // 2) // orig

    def fft_resample():
        spectrum = tf.signal.rfft(samples)
        m = tf.minimum(n, n_out)
        keep = m // 2 + 1
        # An even-length spectrum's Nyquist bin stands for both +f and -f, so
        # it is split (upsampling) or joined (downsampling) as scipy does.
        nyquist = tf.where(tf.equal(m % 2, 0),
                           tf.where(n_out < n, 2.0, 0.5), 1.0)
        factor = tf.concat([tf.ones([keep - 1]), [nyquist]], 0)
        spectrum = spectrum[:keep] * tf.complex(factor, 0.0)
        spectrum = tf.pad(spectrum, [[0, n_out // 2 + 1 - keep]])
        out = tf.signal.irfft(spectrum, fft_length=tf.cast([n_out], tf.int32))
        return out * tf.cast(n_out, tf.float32) / tf.cast(n, tf.float32)

    skip = tf.logical_or(tf.equal(orig, target), tf.logical_or(n == 0, n_out == 0))
    out = tf.cond(skip, lambda: samples[:n_out], fft_resample)
    out.set_shape([None])
    return out


@functools.lru_cache(maxsize=32)
def _mel_matrix(n_mels, num_bins, sample_rate, fmin, fmax):
    """The mel filterbank as a numpy constant, computed once (not per example in the graph)."""
    with tf.init_scope():  # eager even while a tf.data / tf.function graph is being traced
        return tf.signal.linear_to_mel_weight_matrix(n_mels, num_bins, sample_rate, fmin, fmax).numpy()


def _config(sample_rate=16000, duration_s=1.0, frame_length_ms=25.0, frame_step_ms=10.0, n_mels=64,
            fft_length=None, fmin=20.0, fmax=None, n_mfcc=None, frontend=None, cmvn=False, waveform_augment=None):
    """Checks an audio config; returns the frame parameters and the mel matrix constant.

    ``waveform_augment`` is only checked: it acts where a training pipeline passes ``perturb`` and ``warp``.
    """
    if not isinstance(cmvn, bool):
        raise ValueError(f"audio cmvn must be true or false, got {cmvn!r}")
    check_waveform_augment(waveform_augment)
    num_samples, frame_length, frame_step, fft_length, num_frames = _frame_params(
        sample_rate, duration_s, frame_length_ms, frame_step_ms, fft_length)
    fmax = sample_rate / 2.0 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got {fmin}, {fmax}")
    if n_mfcc is not None and not 0 < n_mfcc <= n_mels:
        raise ValueError(f"n_mfcc must be in 1..n_mels={n_mels}, got {n_mfcc}")
    check_frontend({"frontend": frontend, "sample_rate": sample_rate, "frame_length_ms": frame_length_ms,
                    "frame_step_ms": frame_step_ms, "n_mels": n_mels, "fmin": fmin, "fmax": fmax, "n_mfcc": n_mfcc})
    mel = (slaney_mel_matrix(n_mels, fft_length, sample_rate, float(fmin), float(fmax)) if frontend
           else _mel_matrix(n_mels, fft_length // 2 + 1, sample_rate, float(fmin), float(fmax)))
    return {"sample_rate": sample_rate, "duration_s": duration_s, "num_samples": num_samples,
            "frame_length": frame_length, "frame_step": frame_step, "fft_length": fft_length,
            "num_frames": num_frames, "bins": int(n_mfcc or n_mels), "n_mfcc": n_mfcc, "mel": mel,
            "frontend": frontend, "cmvn": cmvn}


@functools.lru_cache(maxsize=8)
def slaney_mel_matrix(n_mels, fft_length, sample_rate, fmin, fmax):
    """``[fft_length // 2 + 1, n_mels]`` Slaney-style mel filterbank (librosa's default: area-normalised).

    The speech_embedding front end's filterbank: its ONNX ``melW`` equals this for
    32 bands over 60-3800 Hz at 16 kHz (to 1e-9, tests/test_speech_embedding.py).

    Example:
        >>> slaney_mel_matrix(32, 512, 16000, 60.0, 3800.0).shape
        (257, 32)
    """
    def hz_to_mel(f):  # linear below 1 kHz, logarithmic above (Slaney's Auditory Toolbox)
        f = np.asarray(f, np.float64)
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0), f * 0.015)

    def mel_to_hz(m):
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m / 0.015)

    bins = np.linspace(0.0, sample_rate / 2.0, fft_length // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    ramps = edges[:, None] - bins[None, :]
    widths = np.diff(edges)
    weights = np.maximum(0.0, np.minimum(-ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).T.astype(np.float32)


def _speech_embedding_frontend(samples, cfg, warp=None):
    """``[..., num_samples]`` in [-1, 1] -> the speech_embedding log-mel ``[..., num_frames, 32]``.

    As openWakeWord's melspectrogram model: int16-scale samples, power spectrum,
    Slaney mel, ``10 log10(max(p, 1e-10))`` clamped 80 dB below the clip's peak (per
    example; the ONNX model takes the peak over its whole input batch), ``x / 10 + 2``.
    Frames start 56 samples earlier than the ONNX model's (it centres the 400-sample
    window in 512): the same frames of the clip delayed by 3.5 ms.
    """
    stft = tf.signal.stft(samples * 32768.0, cfg["frame_length"], cfg["frame_step"], cfg["fft_length"],
                          pad_end=False)
    power = tf.math.square(tf.math.real(stft)) + tf.math.square(tf.math.imag(stft))
    if warp is not None:
        power = warp(power)
    db = 10.0 * tf.math.log(tf.maximum(tf.tensordot(power, tf.constant(cfg["mel"]), 1), 1e-10)) / np.log(10.0)
    db = tf.maximum(db, tf.reduce_max(db, axis=[-2, -1], keepdims=True) - 80.0)
    return db / 10.0 + 2.0


def _canonical_pcm16(data, sample_rate, max_samples):
    """Vectorised decode of the common WAV layout, for a whole ``[B]`` batch at once.

    Canonical = a 44-byte header ('fmt ' of 16 bytes at 12, 'data' at 36), mono
    16-bit PCM, already at ``sample_rate`` (what recorders, soundfile and
    scipy write). One header read, one ``decode_raw`` and no resampling replace
    ~60 small per-example ops, which is what made per-example decoding slow.

    Returns:
        ``(canonical [B] bool, samples [B, max_samples] float32, count [B] int64)``;
        rows that are not canonical hold zeros and must be decoded otherwise.
    """
    n = _length(data)
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(data, tf.zeros_like(n), tf.minimum(n, 44)), tf.uint8,
                                    fixed_length=44), tf.int64)

    def field(offset, nbytes):
        return tf.reduce_sum(head[:, offset:offset + nbytes] * (256 ** np.arange(nbytes, dtype=np.int64)), axis=1)

    def tag(offset, text):
        return tf.reduce_all(tf.equal(head[:, offset:offset + 4], np.frombuffer(text, np.uint8).astype(np.int64)),
                             axis=1)

    canonical = tf.reduce_all(tf.stack([
        n >= 44, tag(0, b"RIFF"), tag(8, b"WAVE"), tag(12, b"fmt "), tf.equal(field(16, 4), 16),
        tf.equal(field(20, 2), _PCM), tf.equal(field(22, 2), 1), tf.equal(field(24, 4), sample_rate),
        tf.equal(field(34, 2), 16), tag(36, b"data")]), axis=0)
    # Streamed WAVs may declare more data than the file holds; only what is needed is read.
    count = tf.minimum(tf.minimum(field(40, 4), tf.maximum(n - 44, 0)) // 2, max_samples)
    count = tf.where(canonical, count, 0)
    payload = tf.strings.substr(data, tf.where(canonical, tf.constant(44, tf.int64), 0), 2 * count)
    samples = tf.io.decode_raw(payload, tf.int16, little_endian=True, fixed_length=2 * max_samples)
    return canonical, tf.cast(samples, tf.float32) / 2.0 ** 15, count


def _decode_batch(wav_bytes, sample_rate, num_samples, name, limits):
    """``[B]`` WAV bytes -> samples at ``sample_rate``, zero-padded/cut to ``num_samples``.

    Canonical files go through the vectorised reader; any other non-empty file
    (other encodings, rates, channel counts, extra chunks) through the general
    per-example parser and resampler, which also raises the errors for bad bytes.
    A file over ``limits["max_bytes"]`` fails before anything is read.

    Returns:
        ``(samples [B, num_samples] float32, decoded [B] int64, length [B] int64)``:
        ``decoded`` counts samples read from the file (0: absent or empty), ``length``
        valid samples after resampling (at most ``num_samples``).
    """
    data = tf.reshape(tf.convert_to_tensor(wav_bytes, tf.string), [-1])
    lengths = _length(data)
    too_big = checks.check_batch(lengths > limits["max_bytes"], name,
                                 f"{{}} bytes, more than the limit max_bytes={limits['max_bytes']}", lengths)
    data = checks.after([too_big], data)
    canonical, samples, decoded = _canonical_pcm16(data, sample_rate, num_samples)
    length = decoded
    other = tf.where(tf.logical_and(tf.logical_not(canonical), lengths > 0))

    def general():
        def one(args):
            wav, index = args
            raw, rate = _decode_wav(wav, name, max_duration_s=num_samples / sample_rate, index=index, limits=limits)
            x = resample(raw, rate, sample_rate)[:num_samples]
            n = tf.size(x, out_type=tf.int64)
            return tf.pad(x, [[0, num_samples - n]]), tf.size(raw, out_type=tf.int64), n

        spec = (tf.TensorSpec([num_samples], tf.float32), tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64))
        x, d, n = tf.map_fn(one, (tf.gather_nd(data, other), other[:, 0]), fn_output_signature=spec)
        return (tf.tensor_scatter_nd_update(samples, other, x), tf.tensor_scatter_nd_update(decoded, other, d),
                tf.tensor_scatter_nd_update(length, other, n))

    # The general path's while loop costs even with nothing to do, so it only runs when needed.
    return tf.cond(tf.size(other) > 0, general, lambda: (samples, decoded, length))


def _split_limits(config):
    """``(feature config, audio limits)`` from a preprocessing config that may hold both."""
    limits = dict(AUDIO_LIMITS)
    config = dict(config)
    for key in limits:
        if key in config:
            limits[key] = config.pop(key)
    return config, limits


def _log_mel(samples, cfg, warp=None):
    """``[..., num_samples]`` -> ``[..., num_frames, bins]`` log-mel (or MFCC), batched.

    ``warp`` (training only): a function of the ``[..., frames, fft bins]`` spectrum
    applied before the mel filterbank (:func:`mmkeras.preprocessing.waveform_augment.warp_frequencies`).
    """
    if cfg["frontend"] == "speech_embedding":
        return _speech_embedding_frontend(samples, cfg, warp)
    stft = tf.signal.stft(samples, cfg["frame_length"], cfg["frame_step"], cfg["fft_length"], pad_end=False)
    # sqrt(re^2 + im^2) and tensordot: about 2x faster on CPU than tf.abs and a
    # broadcasting matmul, same values to float32 rounding.
    magnitude = tf.sqrt(tf.math.square(tf.math.real(stft)) + tf.math.square(tf.math.imag(stft)))
    if warp is not None:
        magnitude = warp(magnitude)
    log_mel = tf.math.log(tf.tensordot(magnitude, tf.constant(cfg["mel"]), 1) + 1e-6)
    if cfg["n_mfcc"] is not None:
        log_mel = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., :cfg["n_mfcc"]]
    return log_mel


def _cmvn(features, length, cfg):
    """Per-utterance cepstral mean/variance normalisation of ``[..., frames, bins]`` features.

    Each bin is shifted and scaled by its mean and standard deviation over the
    frames the clip fills (``length`` valid samples ``[...]``; at least one frame),
    so zero padding after a short clip does not count; padded frames get the same
    shift and scale. A per-utterance gain and the speaker's channel/vocal-tract
    average (a constant offset per bin in the log domain) cancel out.
    """
    filled = (tf.cast(length, tf.int32) - cfg["frame_length"]) // cfg["frame_step"] + 1
    valid = tf.sequence_mask(tf.clip_by_value(filled, 1, cfg["num_frames"]), cfg["num_frames"], tf.float32)
    valid = valid[..., None]
    count = tf.reduce_sum(valid, axis=-2, keepdims=True)
    mean = tf.reduce_sum(features * valid, axis=-2, keepdims=True) / count
    variance = tf.reduce_sum(tf.math.square(features - mean) * valid, axis=-2, keepdims=True) / count
    return (features - mean) * tf.math.rsqrt(variance + CMVN_EPSILON)


def audio_features_batch(wav_bytes, *, name=INPUT_NAME, perturb=None, warp=None, **config):
    """Batched `audio_features`: ``[B]`` WAV bytes -> ``([B, frames, bins], present [B])``.

    The path used by `tf.data` and the SavedModel; see `audio_features` for the
    pipeline and options. ``perturb`` (training only; None in serving, evaluation
    and predict) is a function ``(samples [B, N], length [B]) -> (samples, length)``
    run between decoding/resampling and the features
    (:func:`mmkeras.preprocessing.waveform_augment.perturb_batch`); ``warp`` (training
    only) a function of the ``[B, frames, fft bins]`` spectrum before the mel filterbank.

    Example:
        >>> wavs = tf.constant([encode_wav(0.1 * np.ones(8000), 8000), b""])
        >>> x, present = audio_features_batch(wavs, sample_rate=8000, n_mels=40)
        >>> x.shape, present.numpy().tolist()
        (TensorShape([2, 61, 40]), [1.0, 0.0])
    """
    config, limits = _split_limits(config)
    cfg = _config(**config)
    samples, decoded, length = _decode_batch(wav_bytes, cfg["sample_rate"], cfg["num_samples"], name, limits)
    present = decoded > 0
    if perturb is not None:
        samples, length = perturb(samples, length)
    features = _log_mel(tf.ensure_shape(samples, [None, cfg["num_samples"]]), cfg, warp)
    if cfg["cmvn"]:
        features = _cmvn(features, length, cfg)
    features = tf.where(present[:, None, None], features, 0.0)  # absent -> all zeros
    return tf.ensure_shape(features, [None, cfg["num_frames"], cfg["bins"]]), tf.cast(present, tf.float32)


def audio_features(wav_bytes, *, name=INPUT_NAME, **config):
    """Turns raw WAV bytes into a fixed-size log-mel spectrogram (or MFCCs).

    Pipeline: decode -> mono -> keep the first `duration_s` seconds -> resample
    to `sample_rate` -> zero-pad/trim to `round(duration_s * sample_rate)` ->
    STFT (Hann window, no end padding) -> magnitude -> mel filterbank ->
    `log(mel + 1e-6)` -> optionally the first `n_mfcc` MFCCs. It is
    `audio_features_batch` on a batch of one, so both agree exactly.

    Args:
        wav_bytes: Scalar `tf.string` WAV file (see `decode_wav`). An empty
            string, or a WAV with no samples, means the audio is absent.
        name: Name of the input, used in error messages.
        **config: sample_rate (default 16000; the audio is resampled to it),
            duration_s (1.0; longer clips are cut, shorter padded),
            frame_length_ms (25.0), frame_step_ms (10.0), n_mels (64),
            fft_length (next power of 2 >= the frame), fmin (20.0 Hz),
            fmax (`sample_rate / 2`), n_mfcc (None; if set, this many MFCCs
            (<= n_mels) instead of log-mels), cmvn (False; if True, each bin
            is normalised to zero mean and unit variance over the frames the
            clip fills: per-utterance cepstral mean/variance normalisation,
            which removes the speaker's and the channel's average spectrum
            and the recording's gain), waveform_augment (None; training
            only: ignored here, see `audio_features_batch`'s ``perturb``),
            and the limits max_bytes,
            max_wav_chunks, max_samples, max_sample_rate (see
            `mmkeras.modalities.limits`).

    Returns:
        `(features, present)`: `float32` `[num_frames, n_mfcc or n_mels]` (see
        `audio_feature_shape`) and a `float32` scalar, 1.0 when audio was given
        and 0.0 when absent (features are then all zeros).

    Raises:
        ValueError: for an inconsistent config (fmin/fmax, n_mfcc, frames).
        tf.errors.InvalidArgumentError: (when run) for bytes that are not a
            supported WAV file; the message names `name`.

    Example:
        >>> wav = encode_wav(0.1 * np.ones(8000), 8000)
        >>> x, present = audio_features(tf.constant(wav), n_mels=40)
        >>> x.shape, float(present)
        (TensorShape([98, 40]), 1.0)
    """
    features, present = audio_features_batch(tf.reshape(wav_bytes, [1]), name=name, **config)
    return features[0], present[0]


def audio_window_features_batch(wav_bytes, *, max_windows, name=INPUT_NAME, perturb=None, warp=None, **config):
    """Batched `audio_window_features`: ``[B]`` WAV bytes -> ``([B, W, frames, bins], present [B], valid [B, W])``.

    ``perturb`` and ``warp`` as in `audio_features_batch`, on the whole decoded stretch of ``max_windows``
    windows (``warp`` gets ``[B, W, frames, fft bins]``).
    """
    if int(max_windows) < 1:
        raise ValueError(f"max_windows must be a positive int, got {max_windows}")
    max_windows = int(max_windows)
    config, limits = _split_limits(config)
    cfg = _config(**config)
    total = max_windows * cfg["num_samples"]
    samples, decoded, length = _decode_batch(wav_bytes, cfg["sample_rate"], total, name, limits)
    present = decoded > 0
    if perturb is not None:
        samples, length = perturb(samples, length)
    windows = tf.reshape(samples, [-1, max_windows, cfg["num_samples"]])
    features = _log_mel(windows, cfg, warp)
    starts = tf.range(max_windows, dtype=tf.int64) * cfg["num_samples"]
    if cfg["cmvn"]:  # each window over the samples it holds
        features = _cmvn(features, tf.clip_by_value(length[:, None] - starts[None, :], 0, cfg["num_samples"]), cfg)
    features = tf.where(present[:, None, None, None], features, 0.0)
    valid = tf.cast(tf.logical_and(starts[None, :] < length[:, None], present[:, None]), tf.float32)
    features = tf.ensure_shape(features, [None, max_windows, cfg["num_frames"], cfg["bins"]])
    return features, tf.cast(present, tf.float32), valid


def audio_window_features(wav_bytes, *, max_windows, name=INPUT_NAME, **config):
    """Long-clip mode: splits a clip into up to `max_windows` windows of `duration_s`.

    The clip (decoded only up to `max_windows * duration_s` seconds) is resampled
    once, zero-padded to whole windows and cut into `max_windows` consecutive
    windows; each gets the same log-mel / MFCC features as `audio_features`, in
    one batched STFT. A window is valid when it starts before the clip ends, so
    cost grows linearly with `max_windows` and nothing past it is read.

    Args:
        wav_bytes: Scalar `tf.string` WAV file; empty means absent.
        max_windows: int. Number of windows (the static size of the output).
        name: Name of the input, used in error messages.
        **config: The `audio_features` options (duration_s is the window length).

    Returns:
        `(features, present, valid)`: `float32` `[max_windows, num_frames, bins]`,
        a `float32` scalar presence flag and a `float32` `[max_windows]` mask
        (all zeros when the audio is absent).

    Example:
        >>> wav = encode_wav(0.1 * np.ones(20000), 8000)  # 2.5 s
        >>> x, present, valid = audio_window_features(tf.constant(wav), max_windows=4,
        ...                                           sample_rate=8000, n_mels=40)
        >>> x.shape, valid.numpy().tolist()
        (TensorShape([4, 98, 40]), [1.0, 1.0, 1.0, 0.0])
    """
    features, present, valid = audio_window_features_batch(tf.reshape(wav_bytes, [1]), max_windows=max_windows,
                                                            name=name, **config)
    return features[0], present[0], valid[0]
