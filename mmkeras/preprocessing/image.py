"""In-graph image preprocessing: raw encoded bytes -> fixed-size float features.

Everything here is pure TensorFlow graph code, so it runs
per example inside `tf.data` and inside an exported SavedModel (TF Serving).

Hostile bytes cost bounded memory and time (limits in `mmkeras.modalities.limits`):
the declared size is read from the header (PNG IHDR, GIF screen and first frame,
BMP header; JPEG frame header with `tf.io.extract_jpeg_shape`) before anything is
decoded, a GIF is cut after its first frame so later frames are never decoded, a
centre crop never materialises the full scaled image, and decoding runs in a
guarded one-element `tf.data` pipeline, so a corrupt file fails with a message
naming its example instead of the decoder's own.

A JPEG that declares more than `max_pixels` (but at most `max_jpeg_pixels`) is
decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (`tf.io.decode_jpeg(ratio=)`,
the smallest reduction that fits), so a 48-megapixel photo never exists at full
size in memory; the result is resized as usual.
"""

import numpy as np
import tensorflow as tf

from mmkeras.codecs import encode_png
from mmkeras.modalities.features import IMAGENET_MEAN, IMAGENET_STD, RESIZE_MODES, check_normalize
from mmkeras.modalities.limits import IMAGE_LIMITS
from mmkeras.preprocessing import checks

_PNG, _JPEG, _GIF, _BMP = range(4)
_FORMAT_NAMES = ("PNG", "JPEG", "GIF", "BMP")
_HEADER_BYTES = 32  # enough for the size fields of PNG, GIF and BMP headers
_TAIL_BYTES = 16  # where a PNG's IEND chunk or a JPEG's end marker must be
_HEADER_PROBLEMS = ("PNG header is invalid: no IHDR chunk first, or a width or height of 0",
                    "JPEG header is invalid", "GIF header is invalid: a screen width or height of 0",
                    "BMP header is invalid: the width must be positive and the height non-zero")
# What the guarded decode says about one image.
_OK, _TOO_MANY_PIXELS, _GIF_BLOCKS, _GIF_NO_FRAME, _JPEG_TOO_LARGE = range(5)
# Scale reductions libjpeg applies while decoding (DecodeJpeg's `ratio`).
_JPEG_RATIOS = (1, 2, 4, 8)
# A full GIF data sub-block is a size byte (255) and 255 bytes; runs of them are skipped
# _GIF_RUN at a time.
_GIF_STRIDE, _GIF_RUN = 256, 64
# A centre crop scales the image first unless that intermediate is this many times the output.
_MAX_CROP_STRETCH = 64

# The input name in error messages when a caller names none: this module is the image modality's graph code.
INPUT_NAME = "image"


def _read_bytes(data, start, n):
    """``n`` bytes of each ``[B]`` string from ``start`` (``[B]``) as int64 ``[B, n]``, zero-padded."""
    pos = tf.minimum(tf.cast(start, tf.int64), tf.cast(tf.strings.length(data), tf.int64))
    return tf.cast(tf.io.decode_raw(tf.strings.substr(data, pos, tf.fill(tf.shape(data), tf.constant(n, tf.int64))),
                                    tf.uint8, fixed_length=n), tf.int64)


def _starts_with(b, magic):
    return tf.reduce_all(tf.equal(b[:, :len(magic)], np.frombuffer(magic, np.uint8).astype(np.int64)), axis=1)


def _contains(b, needle):
    """Whether ``needle`` occurs in each row of the int64 byte matrix ``b``."""
    n = b.shape[1] - len(needle) + 1
    found = tf.ones_like(b[:, :n], tf.bool)
    for k, byte in enumerate(needle):
        found &= tf.equal(b[:, k:k + n], byte)
    return tf.reduce_any(found, axis=1)


def _inspect(data):
    """Format codes (-1: unsupported), declared sizes and the truncation test of a ``[B]`` batch.

    Reads the first 32 and the last 16 bytes of each file once, as unsigned bytes
    into int64, so 32-bit header fields never wrap. JPEG sizes are read at decode
    time with ``tf.io.extract_jpeg_shape`` (libjpeg's own header parser).

    Returns:
        ``(fmt, height, width, valid, truncated)``: ``[B]`` int32, int64, int64, bool, bool.
    """
    lengths = tf.cast(tf.strings.length(data), tf.int64)
    b = _read_bytes(data, tf.zeros_like(lengths), _HEADER_BYTES)
    tail = _read_bytes(data, tf.maximum(lengths - _TAIL_BYTES, 0), _TAIL_BYTES)
    formats = {
        _PNG: _starts_with(b, b"\x89PNG\r\n\x1a\n"),
        _JPEG: _starts_with(b, b"\xff\xd8\xff"),
        _GIF: _starts_with(b, b"GIF87a") | _starts_with(b, b"GIF89a"),
        _BMP: _starts_with(b, b"BM"),
    }

    def uint(offset, nbytes, big_endian=False):
        weights = 256 ** np.arange(nbytes, dtype=np.int64)
        return tf.reduce_sum(b[:, offset:offset + nbytes] * (weights[::-1] if big_endian else weights), axis=1)

    def int32(offset):
        v = uint(offset, 4)
        return tf.where(v >= 1 << 31, v - (1 << 32), v)

    long_enough = lengths >= _HEADER_BYTES
    png_h, png_w = uint(20, 4, big_endian=True), uint(16, 4, big_endian=True)
    gif_h, gif_w = uint(8, 2), uint(6, 2)
    bmp_h, bmp_w = int32(22), int32(18)
    sizes = {
        _PNG: (png_h, png_w, tf.equal(uint(12, 4, big_endian=True), 0x49484452) & long_enough),  # "IHDR" first
        _GIF: (gif_h, gif_w, tf.ones_like(long_enough)),
        _BMP: (tf.abs(bmp_h), bmp_w, long_enough),
    }
    fmt = tf.fill(tf.shape(data), -1)
    height, width, valid = tf.zeros_like(lengths), tf.zeros_like(lengths), tf.ones_like(long_enough)
    for code, test in formats.items():
        fmt = tf.where(test, code, fmt)
    for code, (h, w, ok) in sizes.items():
        this = tf.equal(fmt, code)
        height, width = tf.where(this, h, height), tf.where(this, w, width)
        valid = tf.where(this, ok & (h > 0) & (w > 0), valid)
    # A PNG ends with its IEND chunk (4 length bytes, "IEND", 4 CRC bytes), a JPEG with FF D9
    # (some writers pad a few bytes after it).
    truncated = ((formats[_PNG] & ~_contains(tail, b"IEND")) | (formats[_JPEG] & ~_contains(tail, b"\xff\xd9")))
    return fmt, height, width, valid, truncated


def _pixels(height, width, max_pixels):
    """``height * width``, with each side clamped first so the product stays inside int64."""
    cap = tf.constant(max_pixels + 1, tf.int64)
    return tf.minimum(tf.cast(height, tf.int64), cap) * tf.minimum(tf.cast(width, tf.int64), cap)


def _validate(data, present, name, max_bytes, max_pixels):
    """Checks of a ``[B]`` batch before decoding; returns ``(format codes, [check])``.

    The first kind of problem in the list below is reported, for the first
    example that has it.
    """
    lengths = tf.strings.length(data)
    fmt, height, width, valid, truncated = _inspect(data)
    stages = [
        (present & (lengths > max_bytes), f"{{}} bytes, more than the limit max_bytes={max_bytes}", [lengths]),
        (present & (fmt < 0), "not a PNG, JPEG, BMP or GIF image (unrecognised leading bytes; {} bytes)", [lengths]),
        (present & truncated, "looks truncated: a PNG must end with an IEND chunk and a JPEG with an EOI marker "
                              "(FF D9); got {} bytes", [lengths]),
        (present & ~valid, "{}", [tf.gather(_HEADER_PROBLEMS, tf.maximum(fmt, 0))]),
        (present & valid & (_pixels(height, width, max_pixels) > max_pixels),
         f"declares {{}} x {{}} pixels, more than the limit max_pixels={max_pixels}", [width, height]),
    ]
    return fmt, [checks.check_stages(name, stages)]


def _bytes_at(data, pos, n):
    """``n`` bytes of the scalar ``data`` from ``pos`` as uint8 (zeros past the end)."""
    pos = tf.minimum(pos, tf.cast(tf.strings.length(data), tf.int64))
    return tf.io.decode_raw(tf.strings.substr(data, pos, n), tf.uint8, fixed_length=n)


def _gif_first_frame(data, max_blocks):
    """Walks GIF blocks to the end of the first image: ``(end offset, [height, width], status)``.

    DecodeGif decodes every frame, so the caller cuts the file after the first
    one. Runs of full (255-byte) data sub-blocks, what encoders write, are skipped
    ``_GIF_RUN`` at a time; each loop step counts against ``max_blocks``.
    """
    length = tf.cast(tf.strings.length(data), tf.int64)
    packed = tf.cast(_bytes_at(data, tf.constant(10, tf.int64), 1)[0], tf.int64)

    def table(flags):  # colour table bytes announced by a packed field
        return tf.where(flags >= 128, 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), flags % 8), 0)

    def cond(pos, in_blocks, is_image, steps, done, end, size):
        return tf.logical_and(tf.logical_not(done), steps < max_blocks)

    def body(pos, in_blocks, is_image, steps, done, end, size):
        raw = _bytes_at(data, pos, _GIF_STRIDE * _GIF_RUN)
        head = tf.cast(raw[:10], tf.int64)
        # Between blocks: an extension (21, label, sub-blocks) or an image descriptor
        # (2C, 8 bytes of geometry, packed field, local colour table, LZW code size, sub-blocks).
        is_ext, is_img = tf.equal(head[0], 0x21), tf.equal(head[0], 0x2C)
        after_intro = tf.where(is_ext, pos + 2, pos + 11 + table(head[9]))
        # Inside sub-blocks: a size byte, then that many bytes; 0 ends the block.
        full = tf.cast(tf.equal(raw[::_GIF_STRIDE], 255), tf.int32)
        run = tf.argmin(tf.concat([full, [0]], 0), output_type=tf.int64)  # leading full sub-blocks
        terminator = tf.equal(head[0], 0)
        after_sub = tf.where(terminator, pos + 1, tf.where(tf.equal(head[0], 255), pos + _GIF_STRIDE * run,
                                                           pos + head[0] + 1))
        frame_done = in_blocks & terminator & is_image
        bad = (pos >= length) | (~in_blocks & ~is_ext & ~is_img)
        geometry = tf.stack([head[7] + 256 * head[8], head[5] + 256 * head[6]])
        return (tf.where(in_blocks, after_sub, after_intro),
                tf.where(in_blocks, ~terminator, True),
                tf.where(in_blocks, is_image, is_img),
                steps + 1,
                frame_done | bad,
                tf.where(frame_done & ~bad, pos + 1, end),
                tf.where(~in_blocks & is_img, geometry, size))

    start = (13 + table(packed), tf.constant(False), tf.constant(False), tf.constant(0, tf.int64),
             tf.constant(False), tf.constant(-1, tf.int64), tf.zeros([2], tf.int64))
    _, _, _, _, done, end, size = tf.while_loop(cond, body, start)
    status = tf.where(end >= 0, _OK, tf.where(done, _GIF_NO_FRAME, _GIF_BLOCKS))
    return end, size, status


def _jpeg_ratio(height, width, max_pixels, max_jpeg_pixels):
    """The smallest of 1, 2, 4, 8 that brings a JPEG within ``max_pixels`` (0: none may be used).

    libjpeg's scaled output is ``ceil(side / ratio)`` per side; beyond ratio 1 the
    full size must also stay within ``max_jpeg_pixels``.
    """
    ratio = tf.zeros_like(height, tf.int32)
    for r in reversed(_JPEG_RATIOS):
        fits = _pixels((height + r - 1) // r, (width + r - 1) // r, max_pixels) <= max_pixels
        ratio = tf.where(fits, r, ratio)
    too_large = (ratio > 1) & (_pixels(height, width, max_jpeg_pixels) > max_jpeg_pixels)
    return tf.where(too_large, 0, ratio)


def _prepare(data, codes, max_pixels, max_gif_blocks, max_jpeg_pixels):
    """What to decode for each of ``[N]`` present images: ``(bytes, status, [N, 2] sizes, [N] JPEG ratios)``.

    JPEG sizes come from ``tf.io.extract_jpeg_shape`` (libjpeg's own header parser,
    so exactly what the decoder would allocate); a JPEG over ``max_pixels`` gets the
    reduction it is decoded at; GIFs are cut after their first frame. A refused
    image (non-zero status) is replaced by a 1 x 1 PNG, so the decode that
    follows needs no branch. The JPEG and GIF passes only run when
    the batch holds such images.
    """
    status = tf.zeros(tf.shape(data), tf.int32)
    size = tf.zeros(tf.concat([tf.shape(data), [2]], 0), tf.int64)

    def subset(code, fn, spec):
        index = tf.where(tf.equal(codes, code))
        part = tf.gather_nd(data, index)
        empty = tf.nest.map_structure(lambda s: tf.zeros([0, *s.shape], s.dtype), spec)
        return index, part, tf.cond(tf.size(index) > 0, lambda: tf.map_fn(fn, part, fn_output_signature=spec),
                                    lambda: empty)

    def jpeg_size(one):
        return tf.cast(tf.io.extract_jpeg_shape(one)[:2], tf.int64)

    index, part, jpeg = subset(_JPEG, jpeg_size, tf.TensorSpec([2], tf.int64))
    jpeg_ratio = _jpeg_ratio(jpeg[:, 0], jpeg[:, 1], max_pixels, max_jpeg_pixels)
    refused = tf.equal(jpeg_ratio, 0)
    why = tf.where(_pixels(jpeg[:, 0], jpeg[:, 1], max_jpeg_pixels) > max_jpeg_pixels, _JPEG_TOO_LARGE,
                   _TOO_MANY_PIXELS)
    data = tf.tensor_scatter_nd_update(data, index, tf.where(refused, _PLACEHOLDER, part))
    status = tf.tensor_scatter_nd_update(status, index, tf.where(refused, why, _OK))
    size = tf.tensor_scatter_nd_update(size, index, jpeg)
    ratio = tf.tensor_scatter_nd_update(tf.ones(tf.shape(data), tf.int32), index, tf.maximum(jpeg_ratio, 1))

    spec = (tf.TensorSpec([], tf.int64), tf.TensorSpec([2], tf.int64), tf.TensorSpec([], tf.int32))
    index, part, (end, gif, gif_status) = subset(_GIF, lambda one: _gif_first_frame(one, max_gif_blocks), spec)
    gif_status = tf.where(tf.equal(gif_status, _OK) & (_pixels(gif[:, 0], gif[:, 1], max_pixels) > max_pixels),
                          _TOO_MANY_PIXELS, gif_status)
    # The file up to the end of the first frame, then the GIF trailer (3B).
    first_frame = tf.strings.join([tf.strings.substr(part, tf.zeros_like(end), tf.maximum(end, 0)), b";"])
    data = tf.tensor_scatter_nd_update(data, index, tf.where(tf.equal(gif_status, _OK), first_frame, _PLACEHOLDER))
    status = tf.tensor_scatter_nd_update(status, index, gif_status)
    size = tf.tensor_scatter_nd_update(size, index, gif)
    return data, status, size, ratio


def _check_decoded(name, decoded, status, size, fmt, max_pixels, max_gif_blocks, max_jpeg_pixels):
    """The named errors for images the guarded decode refused or could not decode."""
    stages = [
        (~decoded, "could not be decoded as {} (corrupt or unsupported image data)",
         [tf.gather(_FORMAT_NAMES, tf.maximum(fmt, 0))]),
        (tf.equal(status, _TOO_MANY_PIXELS), f"declares {{}} x {{}} pixels, more than the limit "
                                             f"max_pixels={max_pixels}", [size[:, 1], size[:, 0]]),
        (tf.equal(status, _JPEG_TOO_LARGE), f"declares {{}} x {{}} pixels, more than the limit "
                                            f"max_pixels={max_pixels} and, for a JPEG decoded at reduced scale, "
                                            f"max_jpeg_pixels={max_jpeg_pixels}", [size[:, 1], size[:, 0]]),
        (tf.equal(status, _GIF_BLOCKS), f"GIF: the first frame does not end within the limit "
                                        f"max_gif_blocks={max_gif_blocks} blocks", []),
        (tf.equal(status, _GIF_NO_FRAME), "could not be decoded as GIF (no complete first frame)", []),
    ]
    return [checks.check_stages(name, stages)]


def _limits(max_bytes, max_pixels, max_gif_blocks, max_jpeg_pixels):
    """The given limits, defaults where None; ``max_jpeg_pixels`` is never below ``max_pixels``."""
    given = {"max_bytes": max_bytes, "max_pixels": max_pixels, "max_gif_blocks": max_gif_blocks,
             "max_jpeg_pixels": max_jpeg_pixels}
    out = {k: IMAGE_LIMITS[k] if v is None else v for k, v in given.items()}
    out["max_jpeg_pixels"] = max(out["max_jpeg_pixels"], out["max_pixels"])
    return out["max_bytes"], out["max_pixels"], out["max_gif_blocks"], out["max_jpeg_pixels"]


def decode_image(image_bytes, channels=3, name=INPUT_NAME, max_bytes=None, max_pixels=None, max_gif_blocks=None,
                 max_jpeg_pixels=None):
    """Validates and decodes one PNG, JPEG, BMP or GIF (first frame) image.

    Args:
        image_bytes: Scalar `tf.string` holding the encoded file (must be non-empty).
        channels: 1 (grayscale) or 3 (RGB); alpha is dropped, gray is expanded.
        name: Name of the input, used in error messages.
        max_bytes: int or None. Largest accepted file (default: `mmkeras.modalities.limits.IMAGE_LIMITS`).
        max_pixels: int or None. Largest width x height a header may declare.
        max_gif_blocks: int or None. GIF blocks walked to find the first frame's end.
        max_jpeg_pixels: int or None. Largest width x height of a JPEG decoded at
            reduced scale (a JPEG over ``max_pixels`` is decoded at 1/2, 1/4 or 1/8).

    Returns:
        `uint8` tensor of shape `[height, width, channels]` (a reduced-scale JPEG:
        ``ceil(side / ratio)`` per side).

    Raises:
        tf.errors.InvalidArgumentError: (when run) if the bytes are not one of the
            supported formats, look truncated, exceed a limit or cannot be decoded;
            the message starts with ``mmkeras: input '<name>', example 0``.

    Example:
        >>> png = encode_png(np.zeros((4, 6, 3), np.uint8))
        >>> decode_image(tf.constant(png)).shape
        TensorShape([4, 6, 3])
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    max_bytes, max_pixels, max_gif_blocks, max_jpeg_pixels = _limits(max_bytes, max_pixels, max_gif_blocks,
                                                                     max_jpeg_pixels)
    data = tf.reshape(tf.convert_to_tensor(image_bytes, tf.string), [1])
    fmt, done = _validate(data, tf.ones([1], tf.bool), name, max_bytes, max_pixels)
    data = checks.after(done, data)
    fallback = (tf.zeros([0, 0, channels], tf.uint8), tf.zeros([1], tf.int32), tf.zeros([1, 2], tf.int64))

    def decode(data, codes):
        data, status, size, ratio = _prepare(data, codes, max_pixels, max_gif_blocks, max_jpeg_pixels)
        return _decode(data[0], channels, ratio[0]), status, size

    ok, (image, status, size) = checks.guarded(decode, (data, fmt), fallback)
    done = _check_decoded(name, tf.reshape(ok, [1]), status, size, fmt, max_pixels, max_gif_blocks,
                          max_jpeg_pixels)
    return checks.after(done, image)


def _decode(image_bytes, channels, ratio=None):
    """Decodes bytes already validated (first GIF frame only if the file holds one).

    ``ratio`` (scalar int32, 1, 2, 4 or 8; None: 1) is the scale reduction of a JPEG.
    """
    if ratio is not None:
        def scaled(r):
            def fn():
                image = tf.io.decode_jpeg(image_bytes, channels=channels, ratio=r)
                image.set_shape([None, None, channels])
                return image
            return checks.rarely(fn)

        branch = tf.argmax(tf.cast(tf.equal(ratio, _JPEG_RATIOS), tf.int32), output_type=tf.int32)
        return tf.switch_case(branch, [lambda: _decode(image_bytes, channels)]
                              + [scaled(r) for r in _JPEG_RATIOS[1:]])

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
    """uint8 ``[h, w, c]`` -> float32 ``[height, width, c]`` in [0, 255].

    The image stays uint8 until the resize op (a full-size float copy of a large
    photo would cost 4x its decoded size); the result is identical.
    """
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
        new_h = tf.maximum(tf.round(shape[0] * scale), height)
        new_w = tf.maximum(tf.round(shape[1] * scale), width)
        top, left = tf.floor((new_h - height) / 2), tf.floor((new_w - width) / 2)

        def scale_then_crop(antialias):
            def fn():
                out = tf.image.resize(image, tf.cast(tf.stack([new_h, new_w]), tf.int32), antialias=antialias)
                y, x = tf.cast(top, tf.int32), tf.cast(left, tf.int32)
                return out[y:y + height, x:x + width, :]
            return fn

        def crop_directly():
            # The same centre crop, computed without the scaled image (bilinear, antialiased when
            # shrinking; equal to ~1e-3 on a 0-255 scale): scaling a 1 x 100000 image to
            # 32 x 3200000 first would allocate over a gigabyte.
            return tf.raw_ops.ScaleAndTranslate(
                images=image[None], size=tf.constant([height, width]),
                scale=tf.stack([new_h / shape[0], new_w / shape[1]]), translation=-tf.stack([top, left]),
                kernel_type="triangle", antialias=True)[0]

        # Scaling first is faster for the usual shapes (see `_scaled` for the antialiasing);
        # only extreme aspect ratios take the direct path. One branch op per image.
        branch = tf.where(new_h * new_w > _MAX_CROP_STRETCH * height * width, 2,
                          tf.where(scale < 1.0, 1, 0))
        out = tf.switch_case(branch, [scale_then_crop(False), scale_then_crop(True), checks.rarely(crop_directly)])
    # Bilinear has no negative lobes, but guard rounding before normalizing.
    return tf.clip_by_value(out, 0.0, 255.0)


def _normalize(image, normalize, channels):
    if normalize is None:
        return image
    if normalize == "unit":
        return image / 255.0
    if normalize == "minus_one_one":
        return image / 127.5 - 1.0
    if normalize == "efficientnet_lite":
        return (image - 127.0) / 128.0
    if isinstance(normalize, dict):  # keras-hub's image-converter rule: pixel * scale + offset
        scale, offset = (np.asarray(normalize.get(k, default), np.float32).reshape(-1)
                         for k, default in (("scale", 1.0), ("offset", 0.0)))
        return image * scale + offset
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    if channels == 1:  # Grayscale: use the channel-averaged statistics.
        mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
    return (image / 255.0 - mean.astype(np.float32)) / std.astype(np.float32)


def image_features(image_bytes, *, height, width, channels=3, resize="crop",
                   normalize="unit", name=INPUT_NAME, **limits):
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
            grayscale), "efficientnet_lite" ((x - 127) / 128), None (float
            values in [0, 255]) or ``{"scale": s, "offset": o}`` (``x * s + o``,
            numbers or one per channel: keras-hub's image converters). Padding from
            `resize="pad"` is 0 before normalization.
        name: Name of the input, used in error messages.
        **limits: max_bytes, max_pixels, max_gif_blocks (see `image_features_batch`).

    Returns:
        `(features, present)`: `float32` `[height, width, channels]` features and a
        `float32` scalar that is 1.0 when an image was given and 0.0 when it was
        absent (features are then all zeros).

    Raises:
        tf.errors.InvalidArgumentError: (when run) for bytes that are not a
            supported image, look truncated, exceed a limit or cannot be decoded;
            the message names `name`.

    Example:
        >>> png = encode_png(np.full((40, 60, 3), 255, np.uint8))
        >>> x, present = image_features(tf.constant(png), height=32, width=32)
        >>> x.shape, float(present)
        (TensorShape([32, 32, 3]), 1.0)
    """
    features, present = image_features_batch(tf.reshape(image_bytes, [1]), height=height, width=width,
                                             channels=channels, resize=resize, normalize=normalize, name=name,
                                             **limits)
    return features[0], present[0]


def image_features_batch(image_bytes, *, height, width, channels=3, resize="crop", normalize="unit",
                         name=INPUT_NAME, max_bytes=None, max_pixels=None, max_gif_blocks=None, max_jpeg_pixels=None,
                         guard=True):
    """Batched `image_features`: ``[B]`` encoded images -> ``([B, H, W, C], present [B])``.

    Checks (format, truncation, limits, header sizes) and normalisation run on the
    whole batch; decoding and resizing run per image (sizes and formats differ),
    inside one guarded ``tf.data`` element so a corrupt file gives a named error
    (``could not be decoded as PNG``) rather than the decoder's own message. See
    `image_features` for the options.

    Args:
        max_bytes: int or None. Largest encoded image (default 16 MiB; see
            `mmkeras.modalities.limits`).
        max_pixels: int or None. Largest width x height a header may declare
            (default 4096 x 4096), checked before decoding; a larger JPEG is
            decoded at 1/2, 1/4 or 1/8 scale (the smallest reduction that fits).
        max_jpeg_pixels: int or None. Largest width x height of a JPEG decoded
            at reduced scale (default 8192 x 8192).
        max_gif_blocks: int or None. GIF blocks walked to find the end of the first
            frame, the only frame decoded (default 50,000).
        guard: bool. Decode inside a guarded ``tf.data`` element so a corrupt file
            gives a named error (the exported model, direct predict). False leaves
            the decoder's own error (``tf.data`` pipelines, where a nested pipeline
            per batch costs ~50% more CPU and serialises decoding, and the model
            names the bad example itself); decoded values are the same.

    Example:
        >>> pngs = tf.constant([encode_png(np.zeros((8, 8, 3), np.uint8)), b""])
        >>> x, present = image_features_batch(pngs, height=4, width=4)
        >>> x.shape, present.numpy().tolist()
        (TensorShape([2, 4, 4, 3]), [1.0, 0.0])
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    check_normalize(normalize, channels)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    max_bytes, max_pixels, max_gif_blocks, max_jpeg_pixels = _limits(max_bytes, max_pixels, max_gif_blocks,
                                                                     max_jpeg_pixels)
    image_bytes = tf.reshape(tf.convert_to_tensor(image_bytes, tf.string), [-1])
    shape = [height, width, channels]
    present = tf.strings.length(image_bytes) > 0
    fmt, done = _validate(image_bytes, present, name, max_bytes, max_pixels)
    image_bytes = checks.after(done, image_bytes)

    def resized(one, ratio=None):
        return tf.ensure_shape(_resize(_decode(one, channels, ratio), height, width, resize), shape)

    def every(data, codes, prepare=True):
        spec = tf.TensorSpec(shape, tf.float32)
        if not prepare:  # PNG and BMP only: nothing to read before decoding
            status, size = tf.zeros(tf.shape(data), tf.int32), tf.zeros(tf.concat([tf.shape(data), [2]], 0), tf.int64)
            return tf.map_fn(resized, data, fn_output_signature=spec), status, size
        data, status, size, ratio = _prepare(data, codes, max_pixels, max_gif_blocks, max_jpeg_pixels)
        return tf.map_fn(lambda one: resized(*one), (data, ratio), fn_output_signature=spec), status, size

    # Only present images are decoded; absent ones stay zeros.
    index = tf.where(present)
    given, codes = tf.gather_nd(image_bytes, index), tf.gather_nd(fmt, index)
    count = tf.size(given)
    fallback = (tf.zeros([0, *shape]), tf.zeros([0], tf.int32), tf.zeros([0, 2], tf.int64))
    # Branches inside a tf.data function cost more than in the serving graph itself, so the
    # JPEG/GIF preparation is chosen here rather than inside the guarded pipeline.
    special = tf.reduce_any(tf.equal(codes, _JPEG) | tf.equal(codes, _GIF))
    if guard:
        ok, (pixels, status, size) = tf.cond(
            special, checks.rarely(lambda: checks.guarded(every, (given, codes), fallback)),
            lambda: checks.guarded(lambda d, c: every(d, c, prepare=False), (given, codes), fallback))

        def name_the_failure():  # runs only when some image failed to decode
            return (tf.zeros([count, *shape]), tf.zeros([count], tf.int32), tf.zeros([count, 2], tf.int64),
                    checks.survivors(lambda d, c: every(d[None], c[None]), (given, codes), count))

        pixels, status, size, decoded = tf.cond(ok, lambda: (pixels, status, size, tf.ones([count], tf.bool)),
                                                checks.rarely(name_the_failure))
    else:
        pixels, status, size = tf.cond(special, checks.rarely(lambda: every(given, codes)),
                                       lambda: every(given, codes, prepare=False))
        decoded = tf.ones([count], tf.bool)
    batch = tf.shape(image_bytes, out_type=tf.int64)
    pixels = tf.scatter_nd(index, pixels, tf.concat([batch, shape], 0))
    status = tf.scatter_nd(index, status, batch)
    size = tf.scatter_nd(index, size, tf.concat([batch, [2]], 0))
    decoded = tf.scatter_nd(index, tf.cast(~decoded, tf.int32), batch) == 0
    done = _check_decoded(name, decoded, status, size, fmt, max_pixels, max_gif_blocks, max_jpeg_pixels)
    pixels = checks.after(done, pixels)
    features = tf.where(present[:, None, None, None], _normalize(pixels, normalize, channels), 0.0)
    return tf.ensure_shape(features, [None, *shape]), tf.cast(present, tf.float32)


# Decoded in place of an image refused by a limit (1 x 1 black PNG), so decoding needs no branch.
_PLACEHOLDER = encode_png(np.zeros((1, 1), np.uint8))
