"""Bounds on what one request may cost: every limit, its default and its reason, in one place.

An exported model faces the internet, so every input gets a bounded amount of
memory and time. Each limit below is checked inside the TensorFlow graph (the
same graph ``tf.data`` runs during training and TF Serving runs at serving time)
before the expensive step it guards, from the bytes' headers where that is
possible. A request over a limit fails with ``INVALID_ARGUMENT`` and a message
that names the input, the example and the limit, e.g.
``mmkeras: input 'image', example 3: declares 20000 x 20000 pixels, more than
max_pixels=16777216``.

Where limits are set:

- per preset or model: the modality's ``preprocessing`` options
  (``{"image": {"preprocessing": {"max_pixels": 50_000_000}}}``); they then hold
  in training too;
- per export: ``export_saved_model(model, path, limits={"max_examples": 64,
  "image": {"max_bytes": 4 << 20}})`` overrides them for that SavedModel only;
  ``max_examples`` (examples per request) is a serving limit and is set here.

The effective limits are recorded in the export's ``assets.extra/mmkeras.json``.
"""

MIB = 1 << 20

# Why each default is what it is (also the documentation's table).
LIMIT_DOCS = {
    "max_examples": "examples in one request; checked before any preprocessing (a 10,000-example request "
                    "of a few MB otherwise peaks at ~8 GB)",
    "image": {
        "max_bytes": "encoded bytes of one image",
        "max_pixels": "width x height declared by the header (PNG IHDR, JPEG SOF, GIF screen and first frame, "
                      "BMP header), checked before decoding; 4096 x 4096 by default (a 12-megapixel photo fits); "
                      "a larger JPEG is decoded at 1/2, 1/4 or 1/8 scale (by the decoder) to fit it",
        "max_jpeg_pixels": "width x height a JPEG may declare when it is decoded at reduced scale (8192 x 8192 by "
                           "default: 24-64 megapixel photos); a progressive JPEG holds 2 bytes per full-size "
                           "sample while it decodes (up to ~6 bytes x this in memory)",
        "max_gif_blocks": "GIF blocks walked to find the end of the first frame (only the first frame is "
                          "decoded); runs of 255-byte data blocks count once per 16 KiB",
    },
    "audio": {
        "max_bytes": "bytes of one WAV file (a 10-minute 16 kHz mono 16-bit file is 19 MB)",
        "max_wav_chunks": "RIFF chunks walked to find 'fmt ' and 'data'",
        "max_samples": "samples (frames x channels) read from one WAV; only the first duration_s seconds "
                       "(x max_windows) are read, so this bounds channel counts and sample rates",
        "max_sample_rate": "sample rate in the WAV header, in Hz",
    },
    "text": {
        "max_chars": "characters kept per text; longer text is cut before standardisation (not an error)",
    },
}

DEFAULT_LIMITS = {
    "max_examples": 1024,
    "image": {"max_bytes": 16 * MIB, "max_pixels": 4096 * 4096, "max_jpeg_pixels": 8192 * 8192,
              "max_gif_blocks": 50_000},
    "audio": {"max_bytes": 64 * MIB, "max_wav_chunks": 256, "max_samples": 1 << 22, "max_sample_rate": 1_000_000},
    "text": {"max_chars": 4096},
}

# A manifest's text cell (CSV field or JSON string) may hold this many bytes; longer is an error
# naming the line (the model keeps max_chars of it).
MAX_TEXT_BYTES = 1 * MIB

# Keeps width x height products of clamped header fields inside int64.
_MAX_LIMIT = 1 << 31


def modality_limits(modality):
    """The default limits of one modality (a fresh dict).

    Example:
    ```python
    modality_limits("image")["max_pixels"]  # 16777216
    ```
    """
    return dict(DEFAULT_LIMITS.get(modality, {}))


def check_limit(key, value, where):
    """A limit must be a positive int no larger than 2**31; returns it as an int."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_LIMIT:
        raise ValueError(f"{where} limit {key!r} must be a positive integer <= {_MAX_LIMIT}, got {value!r}")
    return value


def resolve_limits(preprocessing, overrides=None):
    """The effective limits of a model: preset preprocessing options, then ``overrides``.

    Args:
        preprocessing: dict ``{modality: resolved preprocessing config}`` (the limit
            keys of each config are read; other keys are ignored).
        overrides: dict or None. ``{"max_examples": int, "<modality>": {limit: int}}``,
            e.g. what ``export_saved_model(..., limits=...)`` receives.

    Returns:
        dict ``{"max_examples": int, "<modality>": {limit: int}, ...}`` for the
        model's modalities.

    Raises:
        ValueError: an unknown key or modality (the message lists the known ones),
            or a value that is not a positive int.

    Example:
    ```python
    resolve_limits({"image": {"height": 32, "max_pixels": 10**6}}, {"max_examples": 8})
    # {"max_examples": 8, "image": {"max_bytes": 16777216, "max_pixels": 1000000, ...}}
    ```
    """
    overrides = dict(overrides or {})
    known = ["max_examples", *preprocessing]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"Unknown limit(s) {unknown}; known for this model: {known}")
    out = {"max_examples": check_limit("max_examples", overrides.get("max_examples", DEFAULT_LIMITS["max_examples"]),
                                       "request")}
    for modality, config in preprocessing.items():
        defaults = DEFAULT_LIMITS.get(modality, {})  # a modality added later may declare none
        extra = dict(overrides.get(modality) or {})
        bad = sorted(set(extra) - set(defaults))
        if bad:
            raise ValueError(f"Unknown {modality} limit(s) {bad}; known: {sorted(defaults)}")
        merged = {k: config.get(k, v) for k, v in defaults.items()}
        merged.update(extra)
        out[modality] = {k: check_limit(k, v, modality) for k, v in merged.items()}
    return out
