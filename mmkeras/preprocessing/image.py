"""In-graph image preprocessing: raw encoded bytes -> fixed-size float features.

Everything here is pure TensorFlow graph code, so it runs
per example inside `tf.data` and inside an exported SavedModel (TF Serving).
"""

import numpy as np
import tensorflow as tf

from mmkeras.codecs import encode_png  # noqa: F401  (its home used to be here)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_RESIZE_MODES = ("crop", "plain", "pad")
_NORMALIZE_MODES = ("unit", "minus_one_one", "imagenet", None)


def _tail_contains(data, needle, window):
    """True where `needle` occurs in the last `window` bytes of `data` (any shape)."""
    # Left-padding keeps every substr position in range for short inputs.
    padded = tf.strings.join([b"\0" * window, data])
    tail = tf.strings.substr(padded, tf.strings.length(padded) - window, tf.fill(tf.shape(padded), window))
    n = window - len(needle) + 1
    pieces = tf.strings.substr(tf.stack([tail] * n, axis=-1), tf.range(n), tf.fill([n], len(needle)))
    return tf.reduce_any(tf.equal(pieces, needle), axis=-1)


def _first(values, bad):
    """The first of `values` where `bad` (for error messages)."""
    return tf.boolean_mask(tf.reshape(values, [-1]), tf.reshape(bad, [-1]))[:1]


def _validate(image_bytes, name, present=None):
    """Returns `image_bytes` gated on asserts that each (present) entry is a complete image.

    Works on a scalar or a ``[B]`` batch; ``present`` (bool, same shape) skips absent entries.
    """
    present = tf.ones_like(image_bytes, tf.bool) if present is None else present
    head = tf.strings.substr(image_bytes, 0, 8)
    is_png = tf.equal(head, b"\x89PNG\r\n\x1a\n")
    is_jpeg = tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff")
    gif_head = tf.strings.substr(head, 0, 6)
    is_gif = tf.logical_or(tf.equal(gif_head, b"GIF87a"), tf.equal(gif_head, b"GIF89a"))
    is_bmp = tf.equal(tf.strings.substr(head, 0, 2), b"BM")
    unknown = tf.logical_and(present, tf.logical_not(is_png | is_jpeg | is_gif | is_bmp))
    lengths = tf.strings.length(image_bytes)
    check_format = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(unknown)),
        [(f"mmkeras: input '{name}' is not a PNG, JPEG, BMP or GIF image "
          "(unrecognised leading bytes); got bytes of length"), _first(lengths, unknown)],
    )
    # IEND is the last chunk: 4 length bytes, "IEND", 4 CRC bytes.
    png_ok = tf.logical_or(tf.logical_not(is_png), _tail_contains(image_bytes, b"IEND", 12))
    # A little slack after the JPEG EOI marker: some writers pad the file.
    jpeg_ok = tf.logical_or(tf.logical_not(is_jpeg), _tail_contains(image_bytes, b"\xff\xd9", 16))
    truncated = tf.logical_and(present, tf.logical_not(png_ok & jpeg_ok))
    check_complete = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(truncated)),
        [(f"mmkeras: input '{name}' looks truncated: a PNG must end with an IEND chunk and "
          "a JPEG with an EOI marker (FF D9); got bytes of length"), _first(lengths, truncated)],
    )
    with tf.control_dependencies([check_format, check_complete]):
        return tf.identity(image_bytes)


def decode_image(image_bytes, channels=3, name="image"):
    """Validates and decodes one PNG, JPEG, BMP or GIF (first frame) image.

    Args:
        image_bytes: Scalar `tf.string` holding the encoded file (must be non-empty).
        channels: 1 (grayscale) or 3 (RGB); alpha is dropped, gray is expanded.
        name: Name of the input, used in error messages.

    Returns:
        `uint8` tensor of shape `[height, width, channels]`.

    Raises:
        tf.errors.InvalidArgumentError: (when run) if the bytes are not one of the
            supported formats or a PNG/JPEG looks truncated; the message names `name`.

    Example:
        >>> png = encode_png(np.zeros((4, 6, 3), np.uint8))
        >>> decode_image(tf.constant(png)).shape
        TensorShape([4, 6, 3])
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    return _decode(_validate(image_bytes, name), channels)


def _decode(image_bytes, channels):
    """`decode_image` of bytes already validated."""

    def decode(c):
        image = tf.io.decode_image(image_bytes, channels=c, dtype=tf.uint8,
                                   expand_animations=False)
        image.set_shape([None, None, c])
        return image

    if channels == 3:
        return decode(3)

    def via_rgb():
        rgb = tf.cast(decode(3), tf.float32)
        gray = tf.tensordot(rgb, tf.constant([0.299, 0.587, 0.114]), axes=[[2], [0]])
        return tf.cast(tf.round(gray), tf.uint8)[:, :, None]

    # The BMP and GIF decoders cannot output one channel themselves.
    head = tf.strings.substr(image_bytes, 0, 3)
    needs_rgb = tf.logical_or(tf.equal(tf.strings.substr(head, 0, 2), b"BM"),
                              tf.equal(head, b"GIF"))
    image = tf.cond(needs_rgb, via_rgb, lambda: decode(1))
    image.set_shape([None, None, 1])
    return image


def _scaled(image, size, antialias_if_shrinking=True):
    """Bilinear resize; the antialiasing kernel only runs when an axis shrinks.

    Upsampling with it gives the same values (to ~1e-3 on a 0-255 scale) at
    several times the cost, and most small-model inputs are upsampled.
    """
    shrinks = tf.reduce_any(size < tf.shape(image)[:2])
    return tf.cond(shrinks, lambda: tf.image.resize(image, size, antialias=antialias_if_shrinking),
                   lambda: tf.image.resize(image, size))


def _resize(image, height, width, resize):
    image = tf.cast(image, tf.float32)
    if resize == "plain":
        out = _scaled(image, tf.constant([height, width]))
    elif resize == "pad":
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.minimum(height / shape[0], width / shape[1])
        out = tf.cond(scale < 1.0, lambda: tf.image.resize_with_pad(image, height, width, antialias=True),
                      lambda: tf.image.resize_with_pad(image, height, width))
    else:
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = tf.maximum(height / shape[0], width / shape[1])
        # Round, but never below the target, so the crop always fits.
        new_h = tf.maximum(tf.cast(tf.round(shape[0] * scale), tf.int32), height)
        new_w = tf.maximum(tf.cast(tf.round(shape[1] * scale), tf.int32), width)
        out = _scaled(image, tf.stack([new_h, new_w]))
        top = (new_h - height) // 2
        left = (new_w - width) // 2
        out = out[top:top + height, left:left + width, :]
    # Bilinear has no negative lobes, but guard rounding before normalizing.
    return tf.clip_by_value(out, 0.0, 255.0)


def _normalize(image, normalize, channels):
    if normalize is None:
        return image
    if normalize == "unit":
        return image / 255.0
    if normalize == "minus_one_one":
        return image / 127.5 - 1.0
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    if channels == 1:  # Grayscale: use the channel-averaged statistics.
        mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
    return (image / 255.0 - mean.astype(np.float32)) / std.astype(np.float32)


def image_features(image_bytes, *, height, width, channels=3, resize="crop",
                   normalize="unit", name="image"):
    """Turns raw encoded image bytes into a fixed-size float feature tensor.

    Args:
        image_bytes: Scalar `tf.string`: a PNG, JPEG, BMP or GIF file. An empty
            string means the image is absent.
        height: Output height in pixels.
        width: Output width in pixels.
        channels: 1 (grayscale) or 3 (RGB).
        resize: "crop" (keep aspect ratio, fill, centre crop), "plain" (stretch
            to `height` x `width`) or "pad" (keep aspect ratio, zero pad, via
            `tf.image.resize_with_pad`). Always bilinear with antialiasing.
        normalize: "unit" ([0, 1]), "minus_one_one" ([-1, 1]), "imagenet"
            ((x - mean) / std with ImageNet statistics; channel-averaged for
            grayscale) or None (float values in [0, 255]). Padding from
            `resize="pad"` is 0 before normalization.
        name: Name of the input, used in error messages.

    Returns:
        `(features, present)`: `float32` `[height, width, channels]` features and a
        `float32` scalar that is 1.0 when an image was given and 0.0 when it was
        absent (features are then all zeros).

    Raises:
        tf.errors.InvalidArgumentError: (when run) for bytes that are not a
            supported image or look truncated; the message names `name`.

    Example:
        >>> png = encode_png(np.full((40, 60, 3), 255, np.uint8))
        >>> x, present = image_features(tf.constant(png), height=32, width=32)
        >>> x.shape, float(present)
        (TensorShape([32, 32, 3]), 1.0)
    """
    features, present = image_features_batch(tf.reshape(image_bytes, [1]), height=height, width=width,
                                             channels=channels, resize=resize, normalize=normalize, name=name)
    return features[0], present[0]


def image_features_batch(image_bytes, *, height, width, channels=3, resize="crop", normalize="unit",
                         name="image"):
    """Batched `image_features`: ``[B]`` encoded images -> ``([B, H, W, C], present [B])``.

    Checks and normalisation run on the whole batch; decoding and resizing run
    per image (sizes and formats differ). See `image_features` for the options.

    Example:
        >>> pngs = tf.constant([encode_png(np.zeros((8, 8, 3), np.uint8)), b""])
        >>> x, present = image_features_batch(pngs, height=4, width=4)
        >>> x.shape, present.numpy().tolist()
        (TensorShape([2, 4, 4, 3]), [1.0, 0.0])
    """
    if resize not in _RESIZE_MODES:
        raise ValueError(f"resize must be one of {_RESIZE_MODES}, got {resize!r}")
    if normalize not in _NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {_NORMALIZE_MODES}, got {normalize!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    image_bytes = tf.reshape(tf.convert_to_tensor(image_bytes, tf.string), [-1])
    shape = [height, width, channels]
    present = tf.strings.length(image_bytes) > 0
    image_bytes = _validate(image_bytes, name, present)

    def one(args):
        data, here = args
        return tf.cond(here, lambda: tf.ensure_shape(_resize(_decode(data, channels), height, width, resize), shape),
                       lambda: tf.zeros(shape, tf.float32))

    pixels = tf.map_fn(one, (image_bytes, present), fn_output_signature=tf.TensorSpec(shape, tf.float32))
    features = tf.where(present[:, None, None, None], _normalize(pixels, normalize, channels), 0.0)
    return tf.ensure_shape(features, [None, *shape]), tf.cast(present, tf.float32)
