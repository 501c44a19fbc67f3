"""Raw serving examples for the export tests: real files, generated ones, and bad inputs.

Real data comes from ``../shared/data`` (MNIST digits re-encoded as PNG/JPEG, FSDD
WAV recordings at 8 kHz, made stereo and resampled to 44.1 kHz); generated data
stands in when it is absent. This module runs in the test process (it uses
mmkeras' encoders), never in the fresh "server" process.
"""

import io
import wave
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image
from serving_utils import fuzz_cases

from mmkeras.codecs import encode_png, encode_wav

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TEXTS = ["one spoken digit", "a handwritten seven", "the digit is three", "zero", "nine on the page",
         "a caption about an image and a sound"]


def real_data_missing():
    """None when ../shared/data has MNIST and FSDD, else a message for pytest.skip."""
    need = [DATA_DIR / "mnist" / "mnist.npz", DATA_DIR / "fsdd" / "recordings"]
    absent = [str(p) for p in need if not p.exists()]
    return f"real data not found ({', '.join(absent)}); see ../shared/data/README.md" if absent else None


def encode_jpeg(array_uint8):
    array = np.asarray(array_uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return tf.io.encode_jpeg(tf.constant(array), quality=90).numpy()


def wav_samples(wav_bytes):
    """16-bit PCM WAV bytes -> (float samples [N, C], rate), with the standard library."""
    with wave.open(io.BytesIO(wav_bytes)) as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768.0
        return raw.reshape(-1, w.getnchannels()), w.getframerate()


def to_rate(samples, rate, new_rate):
    """Linear-interpolation resampling (only to make test data at another rate)."""
    n = int(round(len(samples) * new_rate / rate))
    t_new = np.arange(n) / new_rate
    t_old = np.arange(len(samples)) / rate
    return np.stack([np.interp(t_new, t_old, samples[:, c]) for c in range(samples.shape[1])], axis=1)


def real_examples():
    """Six examples covering PNG, JPEG, WAV 8 kHz / 44.1 kHz, mono / stereo; plus their labels.

    Returns:
        ``(raw dict of lists, list of str describing each example)``.
    """
    mnist = np.load(DATA_DIR / "mnist" / "mnist.npz")
    digits, labels = mnist["x_test"][:6], mnist["y_test"][:6]
    speakers = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    # The spoken digit matches the written one, as in the AV-digits benchmark.
    clips = [DATA_DIR / "fsdd" / "recordings" / f"{d}_{s}_0.wav" for d, s in zip(labels, speakers)]
    wavs = [p.read_bytes() for p in clips]
    mono8k = wavs[0]
    s, r = wav_samples(wavs[1])
    stereo8k = encode_wav(np.concatenate([s, 0.5 * s], axis=1), r)
    s, r = wav_samples(wavs[2])
    mono44k = encode_wav(to_rate(s, r, 44100), 44100)
    s, r = wav_samples(wavs[3])
    s44 = to_rate(s, r, 44100)
    stereo44k = encode_wav(np.concatenate([s44, -0.25 * s44], axis=1), 44100)
    images = [encode_png(digits[0]), encode_jpeg(digits[1]), encode_png(np.stack([digits[2]] * 3, -1)),
              encode_jpeg(digits[3]), encode_png(digits[4]), encode_jpeg(digits[5])]
    audio = [mono8k, stereo8k, mono44k, stereo44k, wavs[4], wavs[5]]
    kinds = ["png gray + wav 8k mono", "jpeg + wav 8k stereo", "png rgb + wav 44.1k mono",
             "jpeg + wav 44.1k stereo", "png + wav 8k mono", "jpeg + wav 8k mono"]
    return {"image": images, "audio": audio, "text": TEXTS[:6]}, kinds


def generated_examples(n=6, seed=0):
    """Synthetic PNG/JPEG images, 8 kHz / 44.1 kHz mono/stereo tones, captions."""
    rng = np.random.default_rng(seed)
    images, audio = [], []
    for i in range(n):
        pixels = rng.integers(0, 256, (24 + 4 * i, 40 - 2 * i, 3), dtype=np.uint8)
        images.append(encode_png(pixels) if i % 2 == 0 else encode_jpeg(pixels))
        rate = 8000 if i % 2 == 0 else 44100
        t = np.arange(int(rate * (0.3 + 0.2 * i))) / rate
        tone = 0.4 * np.sin(2 * np.pi * (200 + 100 * i) * t)
        audio.append(encode_wav(tone if i % 4 < 2 else np.stack([tone, 0.5 * tone], 1), rate))
    return {"image": images, "audio": audio, "text": [TEXTS[i % len(TEXTS)] for i in range(n)]}


def bad_inputs():
    """The "Bad input at serving" table: ``{case: (modality, value, expected)}``.

    ``expected`` is ``"error"`` (INVALID_ARGUMENT naming the input), ``"absent"``
    (valid scores, ``present`` 0 for that modality) or ``"present"`` (valid scores,
    the input used after a documented repair).
    """
    png = encode_png(np.full((20, 20, 3), 128, np.uint8))
    jpeg = encode_jpeg(np.full((20, 20, 3), 128, np.uint8))
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    wav = encode_wav(tone, 8000)
    ten_minutes = encode_wav(np.tile(tone, 600), 8000)  # 600 s at 8 kHz, 16-bit mono: 9.6 MB
    nan_float = encode_wav(np.where(np.arange(8000) % 7 == 0, np.nan, tone), 8000, 32, encoding="float")
    alaw = bytearray(wav)
    alaw[20:22] = (6).to_bytes(2, "little")  # format code 6 = A-law, unsupported
    idat = bytearray(zlib.compress(b"\x07" * 2000))
    idat[5:15] = b"\xff" * 10  # a valid signature, IHDR and IEND around corrupt compressed data
    corrupt_png = png[:33] + fuzz_cases.png_chunk(b"IDAT", bytes(idat)) + png[-12:]
    gif = io.BytesIO()
    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(gif, format="GIF")
    return {
        "image_random_bytes": ("image", bytes(np.random.default_rng(1).integers(0, 256, 300, np.uint8)), "error"),
        "image_truncated_png": ("image", png[: len(png) // 2], "error"),
        "image_truncated_jpeg": ("image", jpeg[: len(jpeg) - 40], "error"),
        "image_is_text": ("image", b"definitely not an image", "error"),
        "audio_not_wav": ("audio", b"ID3\x03\x00\x00\x00 an mp3 header, not RIFF", "error"),
        "audio_png_bytes": ("audio", png, "error"),
        "audio_unsupported_encoding": ("audio", bytes(alaw), "error"),
        "audio_zero_samples": ("audio", encode_wav(np.zeros(0), 8000), "absent"),
        "audio_header_only": ("audio", wav[:44], "absent"),
        "audio_truncated_data": ("audio", wav[: len(wav) // 2], "present"),
        "audio_ten_minutes": ("audio", ten_minutes, "present"),
        "audio_float_nan": ("audio", nan_float, "present"),
        "text_20000_chars": ("text", ("word " * 4000).encode(), "present"),
        "text_invalid_utf8": ("text", b"caf\xe9 \xff\xfe broken \xc3", "present"),
        "text_only_punctuation": ("text", b"!!! ... ???", "present"),
        "image_declares_huge_size": ("image", fuzz_cases.png_declaring(20000, 20000), "error"),
        "image_corrupt_png": ("image", corrupt_png, "error"),
        "image_gif_2000_frames": ("image", fuzz_cases.gif_frames(gif.getvalue(), 2000), "present"),
        "image_1x100000": ("image", encode_png(np.full((1, 100000, 3), 90, np.uint8)), "present"),
        "audio_sample_rate_over_2_31": ("audio", fuzz_cases.wav_with(wav, rate=2 ** 31 + 32_000_000), "error"),
        "audio_chunk_flood": ("audio", fuzz_cases.wav_chunk_flood(wav, 1000), "error"),
        "text_one_megabyte": ("text", b"word " * 200_000, "present"),
    }
