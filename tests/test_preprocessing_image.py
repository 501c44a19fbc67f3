"""Tests for mmkeras.preprocessing.image (in-graph image bytes -> features)."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mmkeras.preprocessing.image import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    decode_image,
    encode_png,
    image_features,
)

RED, GREEN, BLUE = (220, 20, 30), (20, 200, 40), (30, 40, 210)


def named(name, example=0):
    """Regex for the input name and example: graph-mode Assert messages C-escape the quotes."""
    return rf"mmkeras: input \\?'{name}\\?', example {example}:"


def pil_bytes(array, fmt, **kwargs):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def three_stripes(height=40, width=120):
    """Wide image: red left third, green centre third, blue right third."""
    image = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    image[:, :third], image[:, third:2 * third], image[:, 2 * third:] = RED, GREEN, BLUE
    return image


def blocks():
    """4 solid 8x8 colour blocks: exact for lossless formats, easy for JPEG."""
    image = np.zeros((16, 16, 3), np.uint8)
    image[:8, :8], image[:8, 8:], image[8:, :8], image[8:, 8:] = RED, GREEN, BLUE, (250, 250, 250)
    return image


@pytest.mark.parametrize("fmt,tol", [("PNG", 0), ("BMP", 0), ("GIF", 0), ("JPEG", 8)])
def test_decode_formats(fmt, tol):
    image = blocks()
    extra = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    decoded = decode_image(tf.constant(pil_bytes(image, fmt, **extra))).numpy()
    assert decoded.shape == (16, 16, 3) and decoded.dtype == np.uint8
    # Block centres avoid JPEG's edge ringing.
    centres = decoded[2:6, 2:6], decoded[2:6, 10:14], decoded[10:14, 2:6], decoded[10:14, 10:14]
    for got, want in zip(centres, [RED, GREEN, BLUE, (250, 250, 250)]):
        assert np.abs(got.astype(int) - np.array(want)).max() <= tol


def test_gif_first_frame():
    frames = [Image.fromarray(np.full((8, 8, 3), c, np.uint8)) for c in (RED, BLUE)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(tf.constant(buf.getvalue())).numpy()
    assert decoded.shape == (8, 8, 3)
    np.testing.assert_array_equal(decoded[4, 4], RED)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "GIF", "JPEG"])
def test_grayscale_and_rgba_inputs(fmt):
    gray = np.full((6, 10), 200, np.uint8)
    rgba = np.concatenate([blocks(), np.full((16, 16, 1), 100, np.uint8)], axis=-1)
    tol = 3 if fmt == "JPEG" else 0
    for channels in (1, 3):
        out = decode_image(tf.constant(pil_bytes(gray, fmt)), channels=channels).numpy()
        assert out.shape == (6, 10, channels)
        assert np.abs(out.astype(int) - 200).max() <= tol
    if fmt in ("PNG", "BMP"):  # The formats PIL writes with alpha.
        data = tf.constant(pil_bytes(rgba, fmt))
        np.testing.assert_array_equal(decode_image(data).numpy()[3, 3], RED)
        gray_red = round(0.299 * RED[0] + 0.587 * RED[1] + 0.114 * RED[2])
        assert abs(int(decode_image(data, channels=1).numpy()[3, 3, 0]) - gray_red) <= 1


def test_resize_crop_keeps_centre():
    data = tf.constant(encode_png(three_stripes()))
    x, present = image_features(data, height=32, width=32, normalize=None)
    assert x.shape == (32, 32, 3) and float(present) == 1.0
    # Away from the stripe borders the crop is pure green.
    np.testing.assert_allclose(x.numpy()[:, 4:-4], np.broadcast_to(GREEN, (32, 24, 3)), atol=1)
    assert np.abs(x.numpy()[:, :, 1] - GREEN[1]).mean() < 15


def test_resize_plain_and_pad():
    data = tf.constant(encode_png(three_stripes()))
    plain, _ = image_features(data, height=32, width=32, resize="plain", normalize=None)
    assert plain.shape == (32, 32, 3)
    np.testing.assert_allclose(plain.numpy()[16, 2], RED, atol=1)
    np.testing.assert_allclose(plain.numpy()[16, 16], GREEN, atol=1)
    np.testing.assert_allclose(plain.numpy()[16, -3], BLUE, atol=1)
    pad, _ = image_features(data, height=32, width=32, resize="pad", normalize=None)
    pad = pad.numpy()
    assert pad.shape == (32, 32, 3)
    # 40x120 -> 32 wide by ~11 tall, zero bands above and below.
    assert np.all(pad[:9] == 0) and np.all(pad[-9:] == 0)
    np.testing.assert_allclose(pad[16, 16], GREEN, atol=1)


def test_normalize_modes():
    white = tf.constant(encode_png(np.full((10, 10, 3), 255, np.uint8)))
    black = tf.constant(encode_png(np.zeros((10, 10, 3), np.uint8)))
    kw = {"height": 8, "width": 8}
    expected = {"unit": (1.0, 0.0), "minus_one_one": (1.0, -1.0), None: (255.0, 0.0)}
    for mode, (hi, lo) in expected.items():
        np.testing.assert_allclose(image_features(white, normalize=mode, **kw)[0], hi, atol=1e-5)
        np.testing.assert_allclose(image_features(black, normalize=mode, **kw)[0], lo, atol=1e-5)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    x = image_features(white, normalize="imagenet", **kw)[0].numpy()
    np.testing.assert_allclose(x[0, 0], (1 - mean) / std, rtol=1e-5)
    x = image_features(black, normalize="imagenet", channels=1, **kw)[0].numpy()
    np.testing.assert_allclose(x[0, 0], -mean.mean() / std.mean(), rtol=1e-5)
    assert np.isfinite(x).all()


def test_absent_image():
    x, present = image_features(tf.constant(b""), height=5, width=7, channels=1,
                                normalize="imagenet")
    assert x.shape == (5, 7, 1) and float(present) == 0.0
    assert not np.any(x.numpy())


def test_bad_bytes_name_the_input():
    with pytest.raises(tf.errors.InvalidArgumentError, match=named("image") + " not a PNG, JPEG"):
        image_features(tf.constant(b"definitely not an image"), height=4, width=4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=named("photo") + " not a PNG"):
        decode_image(tf.constant(b"GIF88a..."), name="photo")
    png = encode_png(blocks())
    jpeg = pil_bytes(blocks(), "JPEG")
    for truncated in (png[:-20], png[: len(png) // 2], jpeg[:-40]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=named("image") + " looks truncated"):
            image_features(tf.constant(truncated), height=4, width=4)


def test_jpeg_with_trailing_padding_is_accepted():
    jpeg = pil_bytes(blocks(), "JPEG") + b"\0" * 10
    assert decode_image(tf.constant(jpeg)).shape == (16, 16, 3)


def test_encode_png_round_trip():
    rng = np.random.default_rng(0)
    for shape in [(28, 28), (5, 7, 1), (5, 7, 2), (5, 7, 3), (5, 7, 4)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        decoded = tf.io.decode_png(encode_png(image), channels=0).numpy()
        np.testing.assert_array_equal(decoded.reshape(image.shape), image)


def _mixed_batch():
    return [encode_png(three_stripes()), b"", pil_bytes(blocks(), "JPEG"),
            pil_bytes(np.full((9, 5), 50, np.uint8), "GIF"), pil_bytes(blocks(), "BMP")]


def test_tf_data_and_map_fn_match_eager():
    kw = {"height": 12, "width": 16, "resize": "crop", "normalize": "minus_one_one"}
    batch = _mixed_batch()
    eager = [image_features(tf.constant(b), **kw) for b in batch]

    ds = tf.data.Dataset.from_tensor_slices(batch).map(lambda b: image_features(b, **kw))
    assert ds.element_spec[0].shape == (12, 16, 3)
    for (x, p), (ex, ep) in zip(ds, eager):
        np.testing.assert_allclose(x, ex, atol=1e-6)
        assert float(p) == float(ep)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(images):
        return tf.map_fn(lambda b: image_features(b, **kw), images,
                         fn_output_signature=(tf.TensorSpec([12, 16, 3], tf.float32),
                                              tf.TensorSpec([], tf.float32)))

    x, p = serve(tf.constant(batch))
    np.testing.assert_allclose(x, np.stack([e[0] for e in eager]), atol=1e-6)
    np.testing.assert_array_equal(p, [1, 0, 1, 1, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=named("image") + " not a PNG"):
        serve(tf.constant([batch[0], b"junk"]))


def test_a_jpeg_over_max_pixels_is_decoded_at_reduced_scale():
    rng = np.random.default_rng(0)
    photo = np.kron(rng.integers(0, 256, (30, 20, 3)), np.ones((100, 100, 1))).astype(np.uint8)  # 3000 x 2000
    jpeg = tf.io.encode_jpeg(photo, quality=90).numpy()
    # 6 MP over a 1 MP limit: libjpeg decodes at 1/4 (1/2 would be 1.5 MP), ceil(side / 4) per side.
    assert decode_image(tf.constant(jpeg), max_pixels=1_000_000).shape == (750, 500, 3)
    assert decode_image(tf.constant(jpeg), max_pixels=1_000_000, channels=1).shape == (750, 500, 1)
    reduced, _ = image_features(tf.constant(jpeg), height=30, width=20, max_pixels=1_000_000)
    full, _ = image_features(tf.constant(jpeg), height=30, width=20)
    np.testing.assert_allclose(reduced.numpy(), full.numpy(), atol=0.03)
    # Over max_jpeg_pixels (or over max_pixels even at 1/8): refused, naming the limits.
    with pytest.raises(tf.errors.InvalidArgumentError, match=named("image") + r" declares 2000 x 3000 pixels, more "
                       r"than the limit max_pixels=1000000 and, for a JPEG decoded at reduced scale, "
                       r"max_jpeg_pixels=5000000"):
        decode_image(tf.constant(jpeg), max_pixels=1_000_000, max_jpeg_pixels=5_000_000)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"declares 2000 x 3000 pixels, more than the limit "
                                                             r"max_pixels=10000\b"):
        image_features(tf.constant(jpeg), height=4, width=4, max_pixels=10_000)
    # A PNG over max_pixels is still refused (only JPEG decoders can scale while decoding).
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"max_pixels=1000\b"):
        image_features(tf.constant(encode_png(photo[:40, :40])), height=4, width=4, max_pixels=1000)
