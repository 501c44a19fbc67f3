"""Tests for mmkeras.preprocessing.audio (in-graph WAV bytes -> features)."""

import io
import os
import struct

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from mmkeras.codecs import encode_wav
from mmkeras.modalities.features import audio_feature_shape
from mmkeras.preprocessing.audio import (
    audio_features,
    audio_features_batch,
    decode_wav,
    resample,
)

REAL_WAV = "/work/shared/data/fsdd/recordings/0_george_0.wav"
ENCODINGS = [("pcm", 8), ("pcm", 16), ("pcm", 24), ("pcm", 32), ("float", 32)]


def named(name, example=None):
    """Regex for the input name (and example): graph-mode Assert messages C-escape the quotes."""
    return rf"mmkeras: input \\?'{name}\\?'" + ("" if example is None else f", example {example}:")


def noise(n, channels=None, seed=0):
    shape = (n,) if channels is None else (n, channels)
    return np.random.default_rng(seed).uniform(-0.9, 0.9, shape)


def sine(freq, rate, seconds, amplitude=0.5):
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def sf_bytes(samples, rate, subtype):
    buf = io.BytesIO()
    sf.write(buf, samples, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


@pytest.mark.parametrize("encoding,bits", ENCODINGS)
@pytest.mark.parametrize("channels", [None, 2])
@pytest.mark.parametrize("rate", [8000, 44100])
def test_encode_decode_round_trip(encoding, bits, channels, rate):
    x = noise(999, channels)  # Odd length: 8-bit mono data needs a pad byte.
    samples, got_rate = decode_wav(tf.constant(encode_wav(x, rate, bits, encoding=encoding)))
    want = x if channels is None else x.mean(axis=1)
    tol = 1e-6 if encoding == "float" else max(1.0 / 2 ** (bits - 1), 1e-6)  # float32 output.
    assert samples.dtype == tf.float32 and samples.shape == (999,)
    assert int(got_rate) == rate
    np.testing.assert_allclose(samples, want, atol=tol)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_decode_matches_soundfile_writer(subtype):
    x = noise(1234, 2, seed=1)
    data = sf_bytes(x, 22050, subtype)
    samples, rate = decode_wav(tf.constant(data))
    ref, ref_rate = sf.read(io.BytesIO(data), dtype="float64")
    assert int(rate) == ref_rate == 22050
    np.testing.assert_allclose(samples, ref.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("encoding,bits", [("pcm", 16), ("float", 32), ("pcm", 24)])
def test_soundfile_reads_encode_wav(encoding, bits):
    x = noise(500, 3, seed=2)
    data = encode_wav(x, 16000, bits, encoding=encoding)
    ref, rate = sf.read(io.BytesIO(data), dtype="float64")
    assert rate == 16000 and ref.shape == (500, 3)
    np.testing.assert_allclose(ref, x, atol=1.0 / 2 ** (bits - 1))
    np.testing.assert_allclose(decode_wav(tf.constant(data))[0], ref.mean(axis=1), atol=1e-6)


def test_extra_chunks_and_extensible():
    x = noise(301, 2, seed=3)
    ref = x.mean(axis=1)
    # An odd-sized LIST chunk exercises the pad byte before 'data'.
    for data in (encode_wav(x, 8000, 16, extra_chunks=[(b"LIST", b"INFOabc")]),
                 encode_wav(x, 8000, 24, extensible=True),
                 encode_wav(x, 8000, 32, encoding="float", extensible=True,
                            extra_chunks=[(b"junk", b"\0" * 5)])):
        samples, rate = decode_wav(tf.constant(data))
        assert int(rate) == 8000
        np.testing.assert_allclose(samples, ref, atol=1e-4)
    assert struct.unpack("<H", encode_wav(x, 8000, 24, extensible=True)[20:22])[0] == 0xFFFE


def test_chunk_after_data_and_streamed_sizes():
    x = noise(101, seed=4)
    data = encode_wav(x, 8000, 8) + b"LIST" + struct.pack("<I", 3) + b"abc\0"
    np.testing.assert_allclose(decode_wav(tf.constant(data))[0], x, atol=1 / 128)
    # Streamed WAVs: RIFF and data sizes set to 0xFFFFFFFF; the data is clamped to the file.
    data = bytearray(encode_wav(x, 8000, 16))
    data[4:8] = data[40:44] = b"\xff\xff\xff\xff"
    np.testing.assert_allclose(decode_wav(tf.constant(bytes(data)))[0], x, atol=1 / 2 ** 15)
    # A trailing partial frame is dropped.
    assert decode_wav(tf.constant(bytes(data[:-1])))[0].shape == (100,)


def test_zero_samples_and_absent():
    empty_wav = encode_wav(np.zeros(0), 8000)
    samples, rate = decode_wav(tf.constant(empty_wav))
    assert samples.shape == (0,) and int(rate) == 8000
    shape = audio_feature_shape(sample_rate=16000, duration_s=1.0, frame_length_ms=25.0,
                                frame_step_ms=10.0, n_mels=64)
    for data in (b"", empty_wav):
        x, present = audio_features(tf.constant(data))
        assert x.shape == shape and float(present) == 0.0
        assert not np.any(x.numpy())


def test_bad_bytes_name_the_input():
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=named("audio", 0) + " not a RIFF/WAVE file"):
        audio_features(tf.constant(b"this is not audio at all"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=named("speech")):
        decode_wav(tf.constant(b"RIFF"), name="speech")
    adpcm = bytearray(encode_wav(noise(10), 8000, 16))
    adpcm[20:22] = struct.pack("<H", 2)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=named("audio") + r": unsupported WAV encoding \(format 2, 16 bits"):
        decode_wav(tf.constant(bytes(adpcm)))
    no_data = encode_wav(noise(10), 8000, 16).replace(b"data", b"dat_")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"no \\?'data\\?' chunk"):
        decode_wav(tf.constant(no_data))


@pytest.mark.parametrize("orig,target", [(44100, 16000), (8000, 16000), (22050, 22050)])
def test_resample_sine(orig, target):
    y = resample(tf.constant(sine(440, orig, 1.0), tf.float32), orig, target).numpy()
    assert y.shape == (target,)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == 440  # 1 s of signal: bin k is k Hz.
    amplitude = 2 * spectrum.max() / len(y)
    assert abs(amplitude - 0.5) < 0.01
    assert abs(np.abs(y).max() - 0.5) < 0.01


def test_resample_matches_scipy():
    signal = pytest.importorskip("scipy.signal")
    x = noise(1001, seed=5)
    for orig, target in [(44100, 16000), (8000, 16000), (16000, 11025)]:
        y = resample(tf.constant(x, tf.float32), tf.constant(orig), target).numpy()
        np.testing.assert_allclose(y, signal.resample(x, len(y)), atol=1e-5)


@pytest.mark.parametrize("config", [
    {},
    {"sample_rate": 8000, "duration_s": 0.5, "n_mels": 40, "n_mfcc": 13},
    {"sample_rate": 22050, "duration_s": 1.3, "frame_length_ms": 46.4, "frame_step_ms": 11.6,
     "n_mels": 128, "fmax": 8000.0},
    {"sample_rate": 16000, "duration_s": 0.75, "frame_length_ms": 30.0, "frame_step_ms": 15.0,
     "n_mels": 32, "fft_length": 1024, "fmin": 0.0},
])
def test_feature_shapes_and_finite(config):
    full = {"sample_rate": 16000, "duration_s": 1.0, "frame_length_ms": 25.0,
            "frame_step_ms": 10.0, "n_mels": 64, **config}
    shape = audio_feature_shape(**full)
    clips = [sine(440, 44100, 2.0), np.zeros(4000), noise(8000, 2)]
    for clip, rate in zip(clips, [44100, 8000, 8000]):
        x, present = audio_features(tf.constant(encode_wav(clip, rate)), **full)
        assert x.shape == shape and float(present) == 1.0
        assert np.isfinite(x.numpy()).all()


def test_long_clip_is_trimmed_first():
    ten_minutes = encode_wav(noise(600 * 8000, seed=6) * 0.5, 8000)
    x, present = audio_features(tf.constant(ten_minutes), n_mfcc=13)
    assert x.shape == (98, 13) and float(present) == 1.0


def test_tf_data_and_map_fn_match_eager():
    kw = {"sample_rate": 8000, "duration_s": 0.5, "n_mels": 32}
    shape = audio_feature_shape(**kw, frame_length_ms=25.0, frame_step_ms=10.0)
    batch = [encode_wav(sine(300, 8000, 0.3), 8000), b"",
             encode_wav(noise(30000, 2), 44100, 24),
             encode_wav(sine(1000, 16000, 1.0), 16000, 32, encoding="float"),
             encode_wav(np.zeros(0), 8000)]
    eager = [audio_features(tf.constant(b), **kw) for b in batch]

    ds = tf.data.Dataset.from_tensor_slices(batch).map(lambda b: audio_features(b, **kw))
    assert tuple(ds.element_spec[0].shape) == shape
    for (x, p), (ex, ep) in zip(ds, eager):
        np.testing.assert_allclose(x, ex, atol=1e-4)
        assert float(p) == float(ep)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(wavs):
        return tf.map_fn(lambda b: audio_features(b, **kw), wavs,
                         fn_output_signature=(tf.TensorSpec(shape, tf.float32),
                                              tf.TensorSpec([], tf.float32)))

    x, p = serve(tf.constant(batch))
    np.testing.assert_allclose(x, np.stack([e[0] for e in eager]), atol=1e-4)
    np.testing.assert_array_equal(p, [1, 0, 1, 1, 0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=named("audio")):
        serve(tf.constant([batch[0], b"junk"]))


def test_batch_canonical_and_general_paths_agree():
    """A batch mixes the vectorised canonical-PCM16 reader and the general parser;
    every row must equal the same audio decoded on its own, whichever path it takes."""
    kw = {"sample_rate": 8000, "duration_s": 0.5, "n_mels": 32}
    clip = sine(440, 8000, 0.7) + 0.1 * noise(5600)
    canonical = encode_wav(clip, 8000)  # 44-byte header, mono, 16-bit, at the target rate
    short = encode_wav(clip[:1000], 8000)  # canonical, shorter than duration_s: zero-padded
    same_audio_other_layouts = [
        encode_wav(clip, 8000, extra_chunks=[(b"LIST", b"INFOtest")]),  # extra chunk: general parser
        encode_wav(clip, 8000, extensible=True),
        encode_wav(np.stack([clip, clip], 1), 8000),  # stereo, averaged to the same mono
    ]
    lying = bytearray(canonical)
    lying[40:44] = struct.pack("<I", 10 ** 8)  # streamed WAV: data size larger than the file
    batch = [canonical, b"", short, *same_audio_other_layouts, bytes(lying), encode_wav(np.zeros(0), 8000),
             encode_wav(clip, 16000)]  # other rate: resampled by the general path
    x, present = audio_features_batch(tf.constant(batch), **kw)
    np.testing.assert_array_equal(present, [1, 0, 1, 1, 1, 1, 1, 0, 1])
    for row, wav in zip(x.numpy(), batch):
        alone, _ = audio_features(tf.constant(wav), **kw)
        np.testing.assert_allclose(row, alone, atol=1e-4)
    for row in x.numpy()[[3, 4, 5, 6]]:
        np.testing.assert_allclose(row, x[0], atol=1e-4)
    assert not x[1].numpy().any() and not x[7].numpy().any()  # absent rows are all zeros
    # the short clip's features equal the full clip's where its samples cover the frames
    np.testing.assert_allclose(x[2][:4], x[0][:4], atol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=named("audio", 1) + " not a RIFF/WAVE file"):
        audio_features_batch(tf.constant([canonical, b"RIFF junk"]), **kw)


def test_real_fsdd_recording():
    if not os.path.exists(REAL_WAV):
        pytest.skip(f"{REAL_WAV} not found (FSDD recordings not downloaded)")
    with open(REAL_WAV, "rb") as f:
        data = f.read()
    samples, rate = decode_wav(tf.constant(data))
    ref, ref_rate = sf.read(REAL_WAV, dtype="float64")
    assert int(rate) == ref_rate == 8000
    np.testing.assert_allclose(samples, ref if ref.ndim == 1 else ref.mean(axis=1), atol=1e-6)
    x, present = audio_features(tf.constant(data))
    assert x.shape == (98, 64) and float(present) == 1.0 and np.isfinite(x.numpy()).all()
