"""Limits: defaults, per-preset and per-export settings, and what each one refuses, in the graph.

The fuzz test (test_serving_fuzz.py) sends hostile requests to an export; these
tests pin the limits themselves: where they are set, that they are recorded in
the export's metadata, and the behaviour at each limit on the preprocessing path.
"""

import io
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import mmkeras
from mmkeras.codecs import encode_png, encode_wav
from mmkeras.preprocessing import limits as limits_lib
from mmkeras.preprocessing.audio import audio_features_batch, decode_wav
from mmkeras.preprocessing.image import decode_image, image_features_batch
from mmkeras.preprocessing.text import standardize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_utils import fuzz_cases  # noqa: E402


def _message(fn):
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn()
    return info.value.message.replace("\\'", "'")


def test_resolve_limits_defaults_overrides_and_errors():
    pre = {"image": {"height": 8, "max_pixels": 10_000}, "text": {}}
    got = limits_lib.resolve_limits(pre, {"max_examples": 8, "text": {"max_chars": 100}})
    assert got == {"max_examples": 8, "image": {**limits_lib.DEFAULT_LIMITS["image"], "max_pixels": 10_000},
                   "text": {"max_chars": 100}}
    with pytest.raises(ValueError, match=r"Unknown limit\(s\) \['audio'\]; known for this model"):
        limits_lib.resolve_limits(pre, {"audio": {}})
    with pytest.raises(ValueError, match=r"Unknown image limit\(s\) \['max_frames'\]"):
        limits_lib.resolve_limits(pre, {"image": {"max_frames": 1}})
    for bad in (0, -1, 1.5, True, 2 ** 40):
        with pytest.raises(ValueError, match="must be a positive integer"):
            limits_lib.resolve_limits(pre, {"max_examples": bad})
    with pytest.raises(ValueError, match="'max_pixels' must be a positive integer"):
        mmkeras.build_model("image_small", num_classes=2, modalities={"image": {"preprocessing": {"max_pixels": 0}}})
    assert set(limits_lib.LIMIT_DOCS) == set(limits_lib.DEFAULT_LIMITS)  # every limit is documented
    for m in ("image", "audio", "text"):
        assert set(limits_lib.LIMIT_DOCS[m]) == set(limits_lib.DEFAULT_LIMITS[m])


def test_a_preset_limit_holds_in_training_and_an_export_limit_only_in_that_export(tmp_path):
    model = mmkeras.build_model("image_small", num_classes=2, modalities={"image": {"preprocessing": {
        "height": 8, "width": 8, "max_pixels": 20 * 20}}})
    small, big = encode_png(np.zeros((20, 20, 3), np.uint8)), encode_png(np.zeros((21, 20, 3), np.uint8))
    model.predict({"image": [small]}, verbose=0)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=r"max_pixels=400"):
        model.predict({"image": [big]}, verbose=0)
    path = mmkeras.export_saved_model(model, tmp_path / "m", limits={"max_examples": 2, "image": {"max_pixels": 500}})
    meta = json.loads((Path(path) / "assets.extra" / "mmkeras.json").read_text())
    assert meta["limits"]["max_examples"] == 2 and meta["limits"]["image"]["max_pixels"] == 500
    assert meta["limits"]["image"]["max_bytes"] == limits_lib.DEFAULT_LIMITS["image"]["max_bytes"]
    serve = tf.saved_model.load(path).signatures["serving_default"]
    assert serve(image=tf.constant([big]))["scores"].shape == (1, 2)  # the export's own limit
    # A JPEG over max_pixels is decoded at reduced scale in the SavedModel too (40 x 40 at 1/2: 400 pixels).
    jpeg = tf.io.encode_jpeg(np.full((40, 40, 3), 90, np.uint8)).numpy()
    assert serve(image=tf.constant([jpeg]))["scores"].shape == (1, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"3 examples, more than the limit max_examples=2"):
        serve(image=tf.constant([small] * 3))
    with pytest.raises(ValueError, match=r"Unknown limit\(s\) \['audio'\]"):
        mmkeras.export_saved_model(model, tmp_path / "n", limits={"audio": {"max_bytes": 1}})


def test_image_limits_are_read_from_headers_before_decoding():
    kw = {"height": 4, "width": 4}
    png = encode_png(np.zeros((30, 40, 3), np.uint8))
    msg = _message(lambda: image_features_batch(tf.constant([png, fuzz_cases.png_declaring(2 ** 32 - 1, 3)]), **kw))
    assert "input 'image', example 1: declares 4294967295 x 3 pixels, more than the limit max_pixels=16777216" in msg
    msg = _message(lambda: image_features_batch(tf.constant([png]), max_pixels=1000, **kw))
    assert "example 0: declares 40 x 30 pixels, more than the limit max_pixels=1000" in msg
    jpeg = fuzz_cases.jpeg_declaring(tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy(), 20000, 10000)
    msg = _message(lambda: image_features_batch(tf.constant([jpeg]), **kw))
    assert "example 0: declares 20000 x 10000 pixels" in msg
    msg = _message(lambda: image_features_batch(tf.constant([png, png, png]), max_bytes=len(png) - 1, **kw))
    assert f"example 0: {len(png)} bytes, more than the limit max_bytes={len(png) - 1}" in msg


def test_only_the_first_gif_frame_is_decoded_and_its_size_is_checked():
    frames = [Image.fromarray(np.full((16, 16, 3), c, np.uint8)) for c in ((200, 0, 0), (0, 0, 200), (0, 200, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    gif = buf.getvalue()
    np.testing.assert_array_equal(decode_image(tf.constant(gif)).numpy()[0, 0], (200, 0, 0))
    many = fuzz_cases.gif_frames(gif, 3000)  # 3,000 copies of the first frame's blocks
    assert decode_image(tf.constant(many)).shape == (16, 16, 3)
    # Walking the blocks is bounded too: the first frame must end within max_gif_blocks.
    msg = _message(lambda: decode_image(tf.constant(gif), max_gif_blocks=2))
    assert "GIF: the first frame does not end within the limit max_gif_blocks=2 blocks" in msg
    msg = _message(lambda: decode_image(tf.constant(fuzz_cases.gif_with(gif, frame=(5000, 5000)))))
    assert "example 0: declares 5000 x 5000 pixels" in msg


def test_extreme_aspect_ratios_crop_without_a_huge_intermediate():
    image = np.random.default_rng(0).integers(0, 256, (2, 3000), dtype=np.uint8)
    x, _ = image_features_batch(tf.constant([encode_png(image)]), height=4, width=4, channels=1, normalize=None)
    # What scaling first and cropping gives (a 4 x 6000 intermediate here; 32 x 3,200,000 for a
    # 1 x 100,000 image into 32 x 32, which the direct crop never allocates).
    scaled = tf.image.resize(image[:, :, None].astype(np.float32), [4, 6000]).numpy()
    np.testing.assert_allclose(x.numpy()[0], scaled[:, 2998:3002], atol=0.3)
    assert image_features_batch(tf.constant([encode_png(np.zeros((1, 100_000), np.uint8))]), height=32,
                                width=32)[0].shape == (1, 32, 32, 3)


def test_wav_limits_and_unsigned_header_fields():
    wav = encode_wav(0.1 * np.ones(800), 8000)
    high = bytearray(wav)
    high[24:28] = struct.pack("<I", 2 ** 31 + 32_000_000)  # wrapped to a negative int32 before
    msg = _message(lambda: decode_wav(tf.constant(bytes(high))))
    assert "WAV sample rate 2179483648 Hz is above the limit max_sample_rate=1000000" in msg
    flood = wav[:12] + b"junk\0\0\0\0" * 300 + wav[12:]
    msg = _message(lambda: audio_features_batch(tf.constant([wav, flood]), sample_rate=8000, n_mels=16))
    assert "input 'audio', example 1: no 'fmt ' and 'data' chunks within the limit max_wav_chunks=256" in msg
    assert decode_wav(tf.constant(flood), limits={"max_wav_chunks": 400})[0].shape == (800,)
    stereo = encode_wav(np.zeros((8000, 2)), 8000)
    msg = _message(lambda: decode_wav(tf.constant(stereo), limits={"max_samples": 1000}))
    assert re.search(r"WAV needs 16000 samples \(8000 frames x 2 channels\), more than the limit max_samples=1000",
                     msg)
    msg = _message(lambda: audio_features_batch(tf.constant([wav]), max_bytes=100, sample_rate=8000, n_mels=16))
    assert f"example 0: {len(wav)} bytes, more than the limit max_bytes=100" in msg


def test_long_text_is_cut_by_bytes_first_keeping_the_first_characters():
    text = "é" * 10 + "word " * 1_000_000  # 5 MB
    out = standardize(tf.constant([text.encode()]), max_chars=12).numpy()[0].decode()
    assert out == "é" * 10 + "wo"
