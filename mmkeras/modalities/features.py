"""Feature arithmetic the modality entries and their graph ops share, TensorFlow-free.

The registry entries (:mod:`mmkeras.modalities.image`, ``.audio``) check options and
declare shapes with these; the graph ops (:mod:`mmkeras.preprocessing.image`,
``.audio``) compute with the same rules. Both import from here, so neither imports
the other back (the one-way import layers, ``.importlinter``).
"""

import math

import numpy as np

# ---- image: resize modes and pixel normalisation ---------------------------------------------

RESIZE_MODES = ("crop", "plain", "pad")
# "efficientnet_lite": (pixel - 127) / 128, the scaling EfficientNet-Lite's weights were trained with.
NORMALIZE_MODES = ("unit", "minus_one_one", "imagenet", "efficientnet_lite", None)
# Each named mode as keras-hub's image converters write it: pixels in [0, 255] * scale + offset.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZE_AFFINE = {
    "unit": ((1 / 255,), (0.0,)),
    "minus_one_one": ((1 / 127.5,), (-1.0,)),
    "efficientnet_lite": ((1 / 128,), (-127 / 128,)),
    "imagenet": (tuple(1 / (255 * s) for s in IMAGENET_STD),
                 tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))),
    None: ((1.0,), (0.0,)),
}


def check_normalize(value, channels=3):
    """Returns ``value`` if it is a named mode or ``{"scale": ..., "offset": ...}``; else a ValueError.

    The dict form is keras-hub's image-converter rule, ``pixel * scale + offset`` on
    pixels in [0, 255]; ``scale`` and ``offset`` are numbers or one number per channel.

    Example:
    ```python
    check_normalize({"scale": [1 / 58.4, 1 / 57.1, 1 / 57.4], "offset": [-2.12, -2.04, -1.80]})
    ```
    """
    if not isinstance(value, dict):
        if value not in NORMALIZE_MODES:
            raise ValueError(f"image normalize must be one of {NORMALIZE_MODES} or {{'scale': number or "
                             f"per-channel list, 'offset': ...}}, got {value!r}")
        return value
    if set(value) - {"scale", "offset"} or "scale" not in value:
        raise ValueError(f"image normalize as a dict takes 'scale' and optionally 'offset' (pixel * scale + "
                         f"offset, pixels in [0, 255]), got keys {sorted(value)}")
    for key in ("scale", "offset"):
        v = value.get(key, 0.0)
        values = v if isinstance(v, (list, tuple)) else [v]
        if (len(values) not in (1, channels) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                       and np.isfinite(x) for x in values)):
            raise ValueError(f"image normalize {key} must be a finite number or {channels} of them (one per "
                             f"channel), got {v!r}")
    return value


def normalize_mode(scale, offset, channels=3):
    """The normalize option for ``pixel * scale + offset``: a named mode where one matches, else the dict.

    Example:
    ```python
    normalize_mode(1 / 127.5, -1.0)  # "minus_one_one"
    ```
    """
    def vector(v, default):
        v = default if v is None else v
        return np.broadcast_to(np.asarray(v, "float64").reshape(-1), (channels,))

    scale_v, offset_v = vector(scale, 1.0), vector(offset, 0.0)
    for mode, (s, o) in NORMALIZE_AFFINE.items():
        if mode == "imagenet" and channels != 3:
            continue
        if np.allclose(scale_v, vector(s, 1.0), rtol=1e-4) and np.allclose(offset_v, vector(o, 0.0), atol=1e-4):
            return mode
    as_list = lambda v: [float(x) for x in v] if len(set(v.tolist())) > 1 else float(v[0])  # noqa: E731
    return {"scale": as_list(scale_v), "offset": as_list(offset_v)}


# ---- audio: framing ---------------------------------------------------------------------------

def frame_params(sample_rate, duration_s, frame_length_ms, frame_step_ms, fft_length=None):
    """``(num_samples, frame_length, frame_step, fft_length, num_frames)`` of an audio config."""
    num_samples = round(duration_s * sample_rate)
    frame_length = round(frame_length_ms * sample_rate / 1000.0)
    frame_step = round(frame_step_ms * sample_rate / 1000.0)
    if frame_length < 1 or frame_step < 1:
        raise ValueError("frame_length_ms and frame_step_ms must be at least one sample")
    if num_samples < frame_length:
        raise ValueError(f"duration_s={duration_s} is shorter than one frame "
                         f"({frame_length_ms} ms)")
    if fft_length is None:
        fft_length = 2 ** math.ceil(math.log2(frame_length))
    if fft_length < frame_length:
        raise ValueError(f"fft_length={fft_length} is shorter than the frame ({frame_length})")
    num_frames = 1 + (num_samples - frame_length) // frame_step
    return num_samples, frame_length, frame_step, fft_length, num_frames


def audio_feature_shape(*, sample_rate, duration_s, frame_length_ms, frame_step_ms, n_mels,
                        n_mfcc=None, max_windows=None, **ignored):
    """Static `(num_frames, num_bins)` shape that `audio_features` returns.

    With `max_windows` set it is `(max_windows, num_frames, num_bins)`, the shape
    of `audio_window_features`. Extra keyword arguments are ignored, so a whole
    `audio_features` config dict can be passed.

    Example:
        >>> audio_feature_shape(sample_rate=16000, duration_s=1.0, frame_length_ms=25.0,
        ...                     frame_step_ms=10.0, n_mels=64)
        (98, 64)
    """
    num_frames = frame_params(sample_rate, duration_s, frame_length_ms, frame_step_ms)[-1]
    if max_windows:
        return int(max_windows), num_frames, int(n_mfcc or n_mels)
    return num_frames, int(n_mfcc or n_mels)


# ---- audio: named front ends that pretrained audio towers were trained with ------------------

# Google's speech_embedding (as openWakeWord ships it): 16 kHz int16-scale samples, 25 ms Hann frames every
# 10 ms, 512-point power spectrum, 32 Slaney mel bands over 60-3800 Hz, 10*log10(max(p, 1e-10)) clamped at
# 80 dB below the clip's peak, then x / 10 + 2. The settings below are the ones the front end fixes.
SPEECH_EMBEDDING_FRONTEND = {"sample_rate": 16000, "frame_length_ms": 25.0, "frame_step_ms": 10.0, "n_mels": 32,
                             "fmin": 60.0, "fmax": 3800.0, "n_mfcc": None}
AUDIO_FRONTENDS = {None: {}, "speech_embedding": SPEECH_EMBEDDING_FRONTEND}


def check_frontend(config):
    """Checks an audio config's ``frontend`` and the settings that front end fixes.

    Raises:
        ValueError: an unknown front end, or a setting that differs from the one the
            front end needs (names the key, the value given and the value needed).

    Example:
        >>> check_frontend({"frontend": None, "n_mels": 64})
    """
    frontend = config.get("frontend")
    if frontend not in AUDIO_FRONTENDS:
        raise ValueError(f"audio frontend must be one of {list(AUDIO_FRONTENDS)}, got {frontend!r}")
    for key, needed in AUDIO_FRONTENDS[frontend].items():
        if key in config and config[key] != needed:
            raise ValueError(f"audio frontend={frontend!r} needs {key}={needed!r} (what its pretrained weights were "
                             f"trained with), got {key}={config[key]!r}")


# ---- audio: training-only waveform augmentation (the preprocessing option ``waveform_augment``) ----

# key -> (default, allowed range as text, test): every option is off at its default, so each can be measured alone.
WAVEFORM_AUGMENT_OPTIONS = {
    "speed": (0.0, "in [0, 0.5)", lambda v: 0.0 <= v < 0.5),
    "pitch": (0.0, "in [0, 0.5)", lambda v: 0.0 <= v < 0.5),
    "shift": (0.0, "in [0, 1)", lambda v: 0.0 <= v < 1.0),
    "silence": (0.0, "in [0, 1)", lambda v: 0.0 <= v < 1.0),
    "gain_db": (0.0, ">= 0 and finite", lambda v: 0.0 <= v < math.inf),
    "noise_snr_db": (None, "a finite number (dB) or None (off)", math.isfinite),
    "vtlp": (0.0, "in [0, 0.5)", lambda v: 0.0 <= v < 0.5),
}


def perturbs_samples(options):
    """Whether checked ``waveform_augment`` options change the samples (``vtlp`` alone warps the spectrum only)."""
    return options is not None and any(options[key] != default for key, (default, _, _) in
                                       WAVEFORM_AUGMENT_OPTIONS.items() if key != "vtlp")


def check_waveform_augment(value):
    """Checks the audio option ``waveform_augment``; returns every option filled in, or None when off.

    Args:
        value: None, ``{}`` or a dict with some of ``speed``, ``pitch``, ``shift``,
            ``silence``, ``gain_db`` and ``noise_snr_db`` (see
            :func:`mmkeras.preprocessing.waveform_augment.perturb_waveform`) and ``vtlp``
            (:func:`mmkeras.preprocessing.waveform_augment.warp_frequencies`).

    Raises:
        ValueError: not a dict, an unknown key, or a value out of its range (names the key).

    Example:
        >>> check_waveform_augment({"speed": 0.1})["speed"], check_waveform_augment(None)
        (0.1, None)
    """
    if value is None or (isinstance(value, dict) and not value):
        return None
    if not isinstance(value, dict):
        raise ValueError(f"audio waveform_augment must be a dict of {sorted(WAVEFORM_AUGMENT_OPTIONS)} or None, "
                         f"got {value!r}")
    unknown = sorted(set(value) - set(WAVEFORM_AUGMENT_OPTIONS))
    if unknown:
        raise ValueError(f"Unknown audio waveform_augment option(s) {unknown}; known: "
                         f"{sorted(WAVEFORM_AUGMENT_OPTIONS)}")
    options = {}
    for key, (default, allowed, test) in WAVEFORM_AUGMENT_OPTIONS.items():
        v = value.get(key, default)
        if v is not None:
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and test(float(v))):
                raise ValueError(f"audio waveform_augment {key} must be {allowed}, got {v!r}")
            v = float(v)
        options[key] = v
    return options
