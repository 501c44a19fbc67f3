"""Bounds on what one request may cost: the built-in modalities' limits, their defaults and reasons.

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
Each modality declares its limits (``Modality.limits``, ``Modality.limit_docs``);
:func:`mmkeras.modalities.base.resolve_limits` asks the registry for them.
"""

MIB = 1 << 20

# The request limit every model has (examples in one request), and why.
MAX_EXAMPLES = 1024
MAX_EXAMPLES_DOC = ("examples in one request; checked before any preprocessing (a 10,000-example request of a few "
                    "MB otherwise peaks at ~8 GB)")

# The built-in modalities' limits and why each default is what it is (also the documentation's table).
# Each modality declares its own (``Modality.limits`` / ``limit_docs``); these live here, below the
# registry, because the built-in graph ops (mmkeras.preprocessing.image, ...) default to them too.
IMAGE_LIMITS = {"max_bytes": 16 * MIB, "max_pixels": 4096 * 4096, "max_jpeg_pixels": 8192 * 8192,
                "max_gif_blocks": 50_000}
IMAGE_LIMIT_DOCS = {
    "max_bytes": "encoded bytes of one image",
    "max_pixels": "width x height declared by the header (PNG IHDR, JPEG SOF, GIF screen and first frame, "
                  "BMP header), checked before decoding; 4096 x 4096 by default (a 12-megapixel photo fits); "
                  "a larger JPEG is decoded at 1/2, 1/4 or 1/8 scale (by the decoder) to fit it",
    "max_jpeg_pixels": "width x height a JPEG may declare when it is decoded at reduced scale (8192 x 8192 by "
                       "default: 24-64 megapixel photos); a progressive JPEG holds 2 bytes per full-size "
                       "sample while it decodes (up to ~6 bytes x this in memory)",
    "max_gif_blocks": "GIF blocks walked to find the end of the first frame (only the first frame is "
                      "decoded); runs of 255-byte data blocks count once per 16 KiB",
}
AUDIO_LIMITS = {"max_bytes": 64 * MIB, "max_wav_chunks": 256, "max_samples": 1 << 22, "max_sample_rate": 1_000_000}
AUDIO_LIMIT_DOCS = {
    "max_bytes": "bytes of one WAV file (a 10-minute 16 kHz mono 16-bit file is 19 MB)",
    "max_wav_chunks": "RIFF chunks walked to find 'fmt ' and 'data'",
    "max_samples": "samples (frames x channels) read from one WAV; only the first duration_s seconds "
                   "(x max_windows) are read, so this bounds channel counts and sample rates",
    "max_sample_rate": "sample rate in the WAV header, in Hz",
}
TEXT_LIMITS = {"max_chars": 4096}
TEXT_LIMIT_DOCS = {
    "max_chars": "characters kept per text; longer text is cut before standardisation (not an error)",
}

# A manifest's text cell (CSV field or JSON string) or a .txt input file may hold this many bytes;
# longer is an error naming the line or file (the model keeps max_chars of it).
MAX_TEXT_BYTES = 1 * MIB

# Keeps width x height products of clamped header fields inside int64.
_MAX_LIMIT = 1 << 31


def check_limit(key, value, where):
    """A limit must be a positive int no larger than 2**31; returns it as an int."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_LIMIT:
        raise ValueError(f"{where} limit {key!r} must be a positive integer <= {_MAX_LIMIT}, got {value!r}")
    return value
