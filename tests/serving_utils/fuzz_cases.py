"""Seeded hostile requests for an exported tri-modal model: the fuzz test's and the campaign's cases.

Seeds are real bytes when ``../shared/data`` is there (MNIST digits encoded as
PNG, JPEG, GIF and BMP; FSDD WAV recordings), generated ones otherwise. Each case
is ``{"id", "family", "expect", "signature", "inputs"}``; ``expect`` is ``"ok"``
(must be answered), ``"error"`` (must fail with a named INVALID_ARGUMENT) or
``"either"`` (a mutated file that a decoder may or may not accept).

Families cover what a client can send: mutated and truncated files, headers
declaring huge sizes, animated GIFs, WAV header fields out of range and chunk
floods, hostile text, batch-shape abuse, and out-of-range ``features`` tensors.
"""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import mmkeras
from mmkeras.codecs import encode_png, encode_wav
from mmkeras.export.request_checks import text_vocab_size

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CAPTIONS = ["a handwritten seven", "one spoken digit", "the digit is three", "zero", "nine on the page"]
PRESET = "image_audio_text_small"


def fuzz_model():
    """The model every fuzz run exports: ``image_audio_text_small``, 10 classes, seed 0, text adapted."""
    model = mmkeras.build_model(PRESET, num_classes=10, seed=0)
    model.adapt({"text": CAPTIONS})
    return model


def _pil(array, fmt, **kwargs):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def seeds(data_dir=DATA_DIR, n=12, rng=None):
    """``{"png": [...], "jpeg": [...], "gif": [...], "bmp": [...], "wav": [...]}`` of valid files."""
    rng = rng or np.random.default_rng(0)
    mnist = Path(data_dir) / "mnist" / "mnist.npz"
    if mnist.exists():
        digits = np.load(mnist)["x_test"][:n]
    else:  # generated stand-ins: strokes on a dark background
        digits = np.zeros((n, 28, 28), np.uint8)
        for d in digits:
            d[rng.integers(4, 12):rng.integers(16, 24), rng.integers(4, 12):rng.integers(16, 24)] = 255
    rgb = [np.repeat(d[:, :, None], 3, axis=2) for d in digits]
    recordings = Path(data_dir) / "fsdd" / "recordings"
    if recordings.is_dir():
        wavs = [(recordings / f"{i % 10}_{s}_0.wav").read_bytes()
                for i, s in enumerate(["george", "jackson", "lucas", "nicolas", "theo", "yweweler"] * 2)][:n]
    else:
        t = np.arange(4000) / 8000
        wavs = [encode_wav(0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t), 8000) for i in range(n)]
    return {"png": [encode_png(d) for d in digits], "jpeg": [_pil(x, "JPEG", quality=90) for x in rgb],
            "gif": [_pil(x, "GIF") for x in rgb], "bmp": [_pil(x, "BMP") for x in rgb], "wav": wavs}


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width, height, data=b"\0" * 64):
    """A PNG whose IHDR declares ``width`` x ``height`` over a small (zlib-valid) IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(data))
            + png_chunk(b"IEND", b""))


def jpeg_declaring(jpeg, width, height):
    """``jpeg`` with its frame header (SOF0/SOF2) patched to declare ``width`` x ``height``."""
    data = bytearray(jpeg)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        i = data.find(marker)
        if i >= 0:
            data[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise ValueError("no SOF0/SOF2 marker")


def _first_image(gif):
    """Offset of the first image descriptor of a GIF (extensions before it are skipped)."""
    pos = 13 + (3 << ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)
    while gif[pos] == 0x21:  # extension: introducer, label, sub-blocks
        pos += 2
        while gif[pos]:
            pos += gif[pos] + 1
        pos += 1
    assert gif[pos] == 0x2C, "no image descriptor"
    return pos


def gif_frames(gif, frames):
    """``gif`` with its first image (and the extensions before it) repeated to make ``frames`` frames."""
    start = 13 + (3 << ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)
    block = gif[start:-1]  # extensions + image descriptor + data, without the trailer
    return gif[:start] + block * frames + b";"


def gif_with(gif, screen=None, frame=None):
    """``gif`` with a patched logical screen size and/or first-frame size (width, height)."""
    data = bytearray(gif)
    if screen:
        data[6:10] = struct.pack("<HH", *screen)
    if frame:
        start = _first_image(gif)
        data[start + 5:start + 9] = struct.pack("<HH", *frame)
    return bytes(data)


def wav_with(wav, **fields):
    """A 44-byte-header WAV with header fields replaced (rate, channels, bits, data_size)."""
    data = bytearray(wav)
    offsets = {"channels": (22, "<H"), "rate": (24, "<I"), "bits": (34, "<H"), "data_size": (40, "<I"),
               "format": (20, "<H")}
    for key, value in fields.items():
        offset, fmt = offsets[key]
        data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(data)


def wav_chunk_flood(wav, chunks):
    """``wav`` with ``chunks`` empty 'junk' chunks between the RIFF header and 'fmt '."""
    return wav[:12] + b"junk\0\0\0\0" * chunks + wav[12:]


def mutate(data, rng, kind):
    """One random mutation of ``data``: flipped bits, overwritten bytes, truncation, cut middle."""
    data = bytearray(data)
    if kind == "bitflip":
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, len(data)))
            data[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == "overwrite":
        n = int(rng.integers(1, 65))
        i = int(rng.integers(0, max(len(data) - n, 1)))
        data[i:i + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    elif kind == "truncate":
        data = data[:int(rng.integers(1, len(data)))]
    else:  # cut a middle piece, keep the end (end markers stay)
        i = int(rng.integers(8, max(len(data) - 16, 9)))
        data = data[:i] + data[i + int(rng.integers(1, 200)):]
    return bytes(data)


def _strings(*columns):
    return {name: np.array(values, dtype=object) for name, values in columns}


class CaseMaker:
    """Builds cases for a model's signatures (its feature shapes, vocabulary and request limit)."""

    def __init__(self, model, seed=0, data_dir=DATA_DIR):
        self.rng = np.random.default_rng(seed)
        self.seed = seeds(data_dir, rng=self.rng)
        self.shapes = model.preprocessor.feature_shapes()
        self.vocab = text_vocab_size(model)
        self.max_examples = model.preprocessor.limits()["max_examples"]
        self.cases = []

    # ---- helpers ----------------------------------------------------------------------

    def pick(self, kind):
        return self.seed[kind][int(self.rng.integers(0, len(self.seed[kind])))]

    def image(self):
        return self.pick(str(self.rng.choice(["png", "jpeg", "gif", "bmp"])))

    def caption(self):
        return CAPTIONS[int(self.rng.integers(0, len(CAPTIONS)))].encode()

    def add(self, family, expect, image=None, audio=None, text=None, inputs=None, signature="serving_default"):
        if inputs is None:
            inputs = _strings(("image", [self.image() if image is None else image]),
                              ("audio", [self.pick("wav") if audio is None else audio]),
                              ("text", [self.caption() if text is None else text]))
        self.cases.append({"id": len(self.cases), "family": family, "expect": expect, "signature": signature,
                           "inputs": inputs})

    def features(self, batch=2, **changes):
        out = {}
        for name, (shape, dtype) in self.shapes.items():
            if name in ("present", "audio_windows"):
                value = np.ones((batch, *shape), np.float32)
            elif dtype == "int32":
                value = self.rng.integers(0, self.vocab, (batch, *shape)).astype(np.int32)
            else:
                value = self.rng.random((batch, *shape)).astype(np.float32)
            out[name] = value
        out.update(changes)
        return out

    # ---- families -----------------------------------------------------------------------

    def valid(self, n):
        for _ in range(n):
            self.add("valid", "ok")
        for m in ("image", "audio", "text"):
            self.add(f"absent_{m}", "ok", **{m: b""})
        self.add("only_text", "ok", image=b"", audio=b"")

    def mutations(self, n):
        for _ in range(n):
            kind = str(self.rng.choice(["bitflip", "overwrite", "truncate", "cut_middle"]))
            if self.rng.random() < 0.55:
                fmt = str(self.rng.choice(["png", "jpeg", "gif", "bmp"]))
                self.add(f"image_{fmt}_{kind}", "either", image=mutate(self.pick(fmt), self.rng, kind))
            else:
                self.add(f"audio_wav_{kind}", "either", audio=mutate(self.pick("wav"), self.rng, kind))

    def crafted_images(self):
        for w, h in [(16384, 16384), (23170, 23170), (30000, 30000), (2 ** 31 - 1, 2), (2 ** 32 - 1, 2 ** 32 - 1),
                     (4097, 4097), (65535, 65535)]:
            self.add("png_huge_declared", "error", image=png_declaring(w, h))
        for w, h in [(0, 5), (5, 0), (0, 0)]:
            self.add("png_zero_size", "error", image=png_declaring(w, h))
        self.add("png_1x100000", "ok", image=encode_png(np.full((1, 100000), 200, np.uint8)))
        self.add("png_100000x1", "ok", image=encode_png(np.full((100000, 1), 200, np.uint8)))
        for w, h in [(16384, 16384), (65535, 65535), (8193, 8193)]:  # all over max_jpeg_pixels
            self.add("jpeg_huge_declared", "error", image=jpeg_declaring(self.pick("jpeg"), w, h))
        self.add("jpeg_zero_size", "error", image=jpeg_declaring(self.pick("jpeg"), 0, 16))
        frame = _pil(np.full((200, 200, 3), 90, np.uint8), "GIF")
        for frames in (2, 500, 2000):
            self.add("gif_many_frames", "ok", image=gif_frames(frame, frames))
        self.add("gif_huge_screen", "error", image=gif_with(self.pick("gif"), screen=(65535, 65535)))
        self.add("gif_huge_frame", "error", image=gif_with(self.pick("gif"), frame=(65000, 65000)))
        self.add("gif_zero_screen", "error", image=gif_with(self.pick("gif"), screen=(0, 28)))
        bmp = self.pick("bmp")
        for offset, value in [(18, -28), (22, 0), (28, 12), (18, 2 ** 31 - 1), (10, -5)]:
            data = bytearray(bmp)
            data[offset:offset + 4 if offset != 28 else offset + 2] = (
                struct.pack("<i", value) if offset != 28 else struct.pack("<H", value))
            self.add("bmp_bad_header", "error", image=bytes(data))
        for junk in [b"", b"not an image at all", b"RIFF\0\0\0\0WEBPVP8 ", b"II*\0" + bytes(100),
                     self.rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()]:
            self.add("image_not_an_image", "error" if junk else "ok", image=junk)
        self.add("png_truncated", "error", image=self.pick("png")[:-20])

    def crafted_audio(self):
        wav = self.pick("wav")
        for rate in (0, 2 ** 31, 2 ** 31 + 32_000_000, 2 ** 32 - 1, 1_000_001):
            self.add("wav_rate_out_of_range", "error", audio=wav_with(wav, rate=rate))
        for rate in (1, 7, 192_000):
            self.add("wav_rate_odd", "ok", audio=wav_with(wav, rate=rate))
        self.add("wav_zero_channels", "error", audio=wav_with(wav, channels=0))
        self.add("wav_many_channels", "either", audio=wav_with(wav, channels=65535))
        for bits in (0, 7, 12, 48):
            self.add("wav_bad_bits", "error", audio=wav_with(wav, bits=bits))
        self.add("wav_alaw", "error", audio=wav_with(wav, format=6))
        self.add("wav_data_size_lies", "ok", audio=wav_with(wav, data_size=2 ** 32 - 1))
        for chunks in (300, 100_000, 4_000_000):
            self.add("wav_chunk_flood", "error", audio=wav_chunk_flood(wav, chunks))
        self.add("wav_chunk_flood_small", "ok", audio=wav_chunk_flood(wav, 100))
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
        self.add("wav_ten_minutes", "ok", audio=encode_wav(np.tile(tone, 600), 8000))
        self.add("wav_float_nan", "ok", audio=encode_wav(np.where(np.arange(8000) % 5 == 0, np.nan, tone), 8000, 32,
                                                         encoding="float"))
        self.add("wav_stereo_24bit_44k", "ok", audio=encode_wav(np.stack([tone, -tone], 1), 44100, 24))
        self.add("wav_header_only", "ok", audio=wav[:44])
        self.add("wav_not_riff", "error", audio=b"ID3\x03\0\0\0 an mp3")

    def hostile_text(self):
        for text in [b"word " * 200_000, b"caf\xe9 \xff\xfe broken \xc3", b"\0" * 5000, "\u202e\U0001f600 emoji "
                     .encode() * 500, b"!!! ... ???", b"\xf4\x90\x80\x80" * 1000]:
            self.add("text_hostile", "ok", text=text)

    def batch_abuse(self):
        one = [self.image(), self.pick("wav"), self.caption()]
        names = ("image", "audio", "text")
        self.add("batch_rank0", "error", inputs={n: np.array(v, dtype=object) for n, v in zip(names, one)})
        self.add("batch_rank2", "error", inputs={n: np.array([[v, v]], dtype=object) for n, v in zip(names, one)})
        self.add("batch_rank3", "error", inputs={**_strings(*[(n, [v]) for n, v in zip(names, one)]),
                                                  "image": np.array([[[one[0]]]], dtype=object)})
        self.add("batch_zero", "error", inputs={n: np.array([], dtype=object) for n in names})
        self.add("batch_mismatch", "error", inputs=_strings(("image", [one[0], one[0]]), ("audio", [one[1]]),
                                                            ("text", [one[2]])))
        self.add("batch_all_empty", "error", inputs=_strings(*[(n, [b"", b""]) for n in names]))
        self.add("batch_one_all_empty", "error", inputs=_strings(("image", [one[0], b""]), ("audio", [one[1], b""]),
                                                                 ("text", [one[2], b""])))
        self.add("batch_nothing_usable", "error", image=b"", audio=self.pick("wav")[:44], text=b"")
        for size in (self.max_examples + 1, 10_000):
            self.add("batch_too_many", "error", inputs=_strings(*[(n, [v] * size) for n, v in zip(names, one)]))
        self.add("batch_64_valid", "ok", inputs=_strings(("image", [self.image() for _ in range(64)]),
                                                         ("audio", [self.pick("wav") for _ in range(64)]),
                                                         ("text", [self.caption() for _ in range(64)])))
        bad = [self.image() for _ in range(8)]
        bad[5] = mutate(bad[5], self.rng, "truncate")[:40]
        self.add("batch_one_bad_image", "error", inputs=_strings(("image", bad), ("audio", [one[1]] * 8),
                                                                 ("text", [one[2]] * 8)))

    def feature_abuse(self):
        sig = "features"
        self.add("features_valid", "ok", inputs=self.features(), signature=sig)
        f = self.features()
        present = f["present"].copy()
        for value in (np.nan, 2.0, -1.0, np.inf):
            p = present.copy()
            p[1, 0] = value
            self.add("features_bad_present", "error", inputs=self.features(present=p), signature=sig)
        self.add("features_all_absent", "error", inputs=self.features(present=np.zeros_like(present)),
                 signature=sig)
        for name, (shape, dtype) in self.shapes.items():
            if dtype == "float32" and name not in ("present", "audio_windows"):
                for value in (np.nan, np.inf, -np.inf):
                    x = f[name].copy()
                    x.reshape(len(x), -1)[1, 3] = value
                    self.add(f"features_{name}_not_finite", "error", inputs=self.features(**{name: x}),
                             signature=sig)
                if name == "image":  # finite, but the conv tower overflows to Inf, then NaN scores
                    x = f[name].copy()
                    x[1] = 3e38
                    self.add("features_image_overflows", "error", inputs=self.features(image=x), signature=sig)
            elif dtype == "int32":
                for value in (-1, self.vocab, 2 ** 31 - 1):
                    x = f[name].copy()
                    x[0, 0] = value
                    self.add(f"features_{name}_out_of_vocabulary", "error", inputs=self.features(**{name: x}),
                             signature=sig)
            wrong = np.zeros((2, *[d + 1 for d in shape]), f[name].dtype)
            self.add("features_wrong_shape", "error", inputs=self.features(**{name: wrong}), signature=sig)
            self.add("features_wrong_rank", "error", inputs=self.features(**{name: f[name][0]}), signature=sig)
        self.add("features_zero_batch", "error", inputs=self.features(batch=0), signature=sig)
        self.add("features_batch_mismatch", "error", inputs=self.features(present=np.ones((3, len(present[0])),
                                                                                           np.float32)), signature=sig)


def make_cases(model, seed=0, mutations=150, valid=20, data_dir=DATA_DIR):
    """The fixed families once each plus ``mutations`` random mutations and ``valid`` valid requests.

    Returns:
        list of case dicts (see the module docstring), ids in order.
    """
    maker = CaseMaker(model, seed=seed, data_dir=data_dir)
    maker.valid(valid)
    maker.crafted_images()
    maker.crafted_audio()
    maker.hostile_text()
    maker.batch_abuse()
    maker.feature_abuse()
    maker.mutations(mutations)
    return maker.cases
