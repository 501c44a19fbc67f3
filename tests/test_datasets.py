"""Tests for mmkeras.datasets: synthetic data, AV-digits pairing and noise, SST-2, downloads.

Real-data tests read ../shared/data (relative to the repository) and skip when
it is absent. No test touches the network: an autouse fixture makes any socket
connection fail, and download paths are exercised with file:// URLs.
"""

import hashlib
import importlib
import io
import os
import socket
import urllib.error
import wave
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmkeras.datasets import (
    _download,
    av_digits,
    av_digits_dataset,
    av_digits_pairs,
    modality_bayes_accuracy,
    sst2,
    sst2_dataset,
    synthetic,
)

# The package exports functions named like their modules (mmkeras.datasets.sst2 is
# the function), so the modules themselves come from the import system.
av_module = importlib.import_module("mmkeras.datasets.av_digits")
sst2_module = importlib.import_module("mmkeras.datasets.sst2")
synthetic_module = importlib.import_module("mmkeras.datasets.synthetic")

DATA_DIR = Path(__file__).parents[1].parent / "shared" / "data"

# Pinned from the implementation and cross-checked by `_reference_pairs` below.
PINNED_FIRST_PAIRS = {
    "train": [(0, "5_yweweler_14.wav", 5), (1, "0_nicolas_46.wav", 0), (2, "4_nicolas_13.wav", 4),
              (3, "1_jackson_37.wav", 1), (4, "9_jackson_48.wav", 9)],
    "test": [(0, "7_lucas_4.wav", 7), (1, "2_nicolas_0.wav", 2), (2, "1_theo_2.wav", 1),
             (3, "0_yweweler_3.wav", 0), (4, "4_george_1.wav", 4)],
}
PINNED_LABEL_COUNTS = {  # Digits 0..9 among the first 10,000 images (size="small").
    "train": [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
PINNED_PAIRS_SHA256 = {  # sha256 of "\n".join(clip names) over all 10,000 small pairs.
    "train": "799afa227a9585edb79a91ab15d3b5389c25e68989edb1d4b6c9a1decbfb8521",
    "test": "094aca1156b04b87edcfc03873742794ad6040a95eb8f0dd649243c9260a2762",
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("tests must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def data_dir():
    if not (DATA_DIR / "fsdd" / "recordings").is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR} (see ../shared/data/README.md)")
    return DATA_DIR


def _reference_pairs(data_dir, split):
    """A deliberately plain re-implementation of the README pairing protocol."""
    names = os.listdir(data_dir / "fsdd" / "recordings")
    lo, hi = (5, 49) if split == "train" else (0, 4)
    labels = np.load(data_dir / "mnist" / "mnist.npz")["y_train" if split == "train" else "y_test"]
    c = {d: sorted(n for n in names if n.split("_")[0] == str(d)
                   and lo <= int(n.split("_")[2][:-4]) <= hi) for d in range(10)}
    rng = np.random.default_rng(0 if split == "train" else 1)
    return [(i, str(rng.choice(c[d])), int(d)) for i, d in enumerate(labels[:10000])]


def _digest(pairs):
    return hashlib.sha256("\n".join(name for _, name, _ in pairs).encode()).hexdigest()


# ---------------------------------------------------------------- AV-digits


@pytest.mark.parametrize("split", ["train", "test"])
def test_pairing_protocol_pinned(data_dir, split):
    pairs = av_digits_pairs(split, "small", data_dir=data_dir)
    assert len(pairs) == 10000
    assert pairs[:5] == PINNED_FIRST_PAIRS[split]
    counts = np.bincount([label for _, _, label in pairs], minlength=10)
    assert counts.tolist() == PINNED_LABEL_COUNTS[split]
    assert pairs == _reference_pairs(data_dir, split)
    assert _digest(pairs) == PINNED_PAIRS_SHA256[split]
    # Every clip is from the split's FSDD indices and has the image's digit.
    allowed = range(5, 50) if split == "train" else range(5)
    for _, name, label in pairs:
        digit, _, index = name[:-4].split("_")
        assert int(digit) == label and int(index) in allowed


def test_pairing_full_extends_small(data_dir):
    full = av_digits_pairs("test", "full", data_dir=data_dir)
    assert len(full) == 10000  # MNIST test has 10,000 images: small == full.
    assert full == av_digits_pairs("test", "small", data_dir=data_dir)


@pytest.fixture(scope="module")
def clean_train(data_dir):
    return av_digits("train", "clean", "small", data_dir=data_dir)


def test_clean_example_zero_is_lossless(data_dir, clean_train):
    x, y = clean_train
    assert x["image"].dtype == object and x["audio"].dtype == object
    assert y.dtype == np.int64 and y.shape == (10000,)
    with np.load(data_dir / "mnist" / "mnist.npz") as f:
        x_train, y_train = f["x_train"], f["y_train"]
    assert np.array_equal(np.array(Image.open(io.BytesIO(x["image"][0]))), x_train[0])
    assert np.array_equal(y, y_train[:10000])
    clip = PINNED_FIRST_PAIRS["train"][0][1]
    assert x["audio"][0] == (data_dir / "fsdd" / "recordings" / clip).read_bytes()


def _pcm_samples(wav_bytes):
    with wave.open(io.BytesIO(wav_bytes)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0


def _float_wav_samples(wav_bytes):
    # encode_wav(encoding="float", bits=32) layout: RIFF, fmt, fact, data chunks.
    assert wav_bytes[:4] == b"RIFF" and wav_bytes[8:12] == b"WAVE"
    pos = 12
    while pos < len(wav_bytes):
        cid, size = wav_bytes[pos:pos + 4], int.from_bytes(wav_bytes[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            assert int.from_bytes(wav_bytes[pos + 8:pos + 10], "little") == 3  # IEEE float
            assert int.from_bytes(wav_bytes[pos + 22:pos + 24], "little") == 32
        if cid == b"data":
            return np.frombuffer(wav_bytes[pos + 8:pos + 8 + size], "<f4").astype(np.float64)
        pos += 8 + size + size % 2
    raise AssertionError("no data chunk")


@pytest.fixture(scope="module")
def noisy_test(data_dir):
    return av_digits("test", "noisy", "small", data_dir=data_dir)


def test_noisy_variant(data_dir, noisy_test):
    x, y = noisy_test
    x2, y2 = av_digits("test", "noisy", "small", data_dir=data_dir)
    assert np.array_equal(y, y2)
    assert all(a == b for a, b in zip(x["image"], x2["image"], strict=True))
    assert all(a == b for a, b in zip(x["audio"], x2["audio"], strict=True))

    clean, y_clean = av_digits("test", "clean", "small", data_dir=data_dir)
    assert np.array_equal(y, y_clean)
    assert x["image"][0] != clean["image"][0] and x["audio"][0] != clean["audio"][0]

    # Independent re-implementation of the README noise for the first examples.
    with np.load(data_dir / "mnist" / "mnist.npz") as f:
        images = f["x_test"]
    rng = np.random.default_rng(3)
    snrs = []
    for i, name, _ in PINNED_FIRST_PAIRS["test"]:
        expected_image = np.clip(images[i] / 255 + 0.6 * rng.standard_normal((28, 28)), 0, 1)
        got_image = np.array(Image.open(io.BytesIO(x["image"][i])))
        assert np.array_equal(got_image, np.round(expected_image * 255).astype(np.uint8))
        s = _pcm_samples((data_dir / "fsdd" / "recordings" / name).read_bytes())
        expected_audio = s + np.sqrt(np.mean(s**2)) * rng.standard_normal(s.shape)
        got_audio = _float_wav_samples(x["audio"][i])
        np.testing.assert_allclose(got_audio, expected_audio, rtol=0, atol=1e-6)
    # SNR of the noisy audio over many clips: ~0 dB.
    for i in range(0, 10000, 50):
        s = _pcm_samples(clean["audio"][i])
        noise = _float_wav_samples(x["audio"][i]) - s
        snrs.append(10 * np.log10(np.mean(s**2) / np.mean(noise**2)))
    assert abs(np.mean(snrs)) < 0.2 and np.max(np.abs(snrs)) < 1.5


def test_av_digits_dataset(data_dir):
    ds = av_digits_dataset("test", batch_size=8, data_dir=data_dir)
    x, y = next(iter(ds))
    assert set(x) == {"image", "audio"} and x["image"].shape == (8,) and y.dtype.name == "int64"
    assert x["audio"].numpy()[0][:4] == b"RIFF"
    assert y.numpy()[:5].tolist() == [label for _, _, label in PINNED_FIRST_PAIRS["test"]]


def test_wrong_data_dir_names_directory(tmp_path):
    missing = tmp_path / "no_data_here"
    with pytest.raises(FileNotFoundError, match="fsdd/recordings") as info:
        av_digits("test", data_dir=missing)
    assert str(missing) in str(info.value)
    with pytest.raises(FileNotFoundError, match="sst2/dev.tsv") as info:
        sst2("dev", data_dir=missing)
    assert str(missing) in str(info.value)


def test_env_var_and_xdg_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MMKERAS_DATA_DIR", str(tmp_path / "env"))
    assert _download.resolve_data_dir() == (tmp_path / "env", False)
    assert _download.resolve_data_dir(tmp_path / "arg") == (tmp_path / "arg", False)
    monkeypatch.delenv("MMKERAS_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _download.resolve_data_dir() == (tmp_path / "xdg" / "mmkeras" / "data", True)


def test_checksum_mismatch_names_file_and_sums(tmp_path):
    fake = tmp_path / "sst2" / "dev.tsv"
    fake.parent.mkdir()
    fake.write_bytes(b"label\tcontent\n1\ta tampered row .\n")
    actual = hashlib.sha256(fake.read_bytes()).hexdigest()
    with pytest.raises(ValueError) as info:
        sst2("dev", data_dir=tmp_path)
    message = str(info.value)
    assert str(fake) in message and sst2_module.SST2_SHA256["dev"] in message and actual in message


def test_fsdd_checksum_mismatch(tmp_path, data_dir):
    recordings = tmp_path / "fsdd" / "recordings"
    recordings.mkdir(parents=True)
    (recordings / "0_george_0.wav").write_bytes(
        (data_dir / "fsdd" / "recordings" / "0_george_0.wav").read_bytes())
    with pytest.raises(ValueError, match=av_module.FSDD_SHA256) as info:
        av_module.load_fsdd(tmp_path)
    assert str(recordings) in str(info.value)


# ---------------------------------------------------------------- downloads


def test_download_file_is_atomic_and_verified(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"hello mmkeras")
    good = hashlib.sha256(b"hello mmkeras").hexdigest()
    dest = tmp_path / "cache" / "sub" / "file.bin"
    _download.download_file(source.as_uri(), dest, good)
    assert dest.read_bytes() == b"hello mmkeras"
    other = tmp_path / "cache" / "sub" / "other.bin"
    with pytest.raises(ValueError, match="expected 0{64}, got " + good) as info:
        _download.download_file(source.as_uri(), other, "0" * 64)
    assert "other.bin" in str(info.value)
    assert sorted(p.name for p in other.parent.iterdir()) == ["file.bin"]  # no partial file


def test_offline_download_raises_clear_error(monkeypatch, tmp_path):
    def offline(url, dest_file, max_bytes=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(_download, "fetch", offline)
    with pytest.raises(FileNotFoundError, match="mnist/mnist.npz") as info:
        av_module.load_mnist(tmp_path, download=True)
    assert str(tmp_path) in str(info.value) and "no network" in str(info.value)
    # download=None only downloads into the default cache, never into a given data_dir.
    monkeypatch.setattr(_download, "fetch", lambda *a: pytest.fail("must not download"))
    with pytest.raises(FileNotFoundError):
        sst2("dev", data_dir=tmp_path)


def test_download_into_default_cache(monkeypatch, tmp_path, data_dir):
    monkeypatch.delenv("MMKERAS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = tmp_path / "xdg" / "mmkeras" / "data"
    monkeypatch.setattr(sst2_module, "SST2_URL", (data_dir / "sst2").as_uri() + "/{split}.tsv")
    monkeypatch.setattr(av_module, "MNIST_URL", (data_dir / "mnist" / "mnist.npz").as_uri())
    # An archive laid out like GitHub's: <repo>-<commit>/recordings/*.wav.
    archive = tmp_path / "fsdd.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("free-spoken-digit-dataset-x/README.md", "readme")
        for wav in sorted((data_dir / "fsdd" / "recordings").iterdir()):
            zf.write(wav, f"free-spoken-digit-dataset-x/recordings/{wav.name}")
    monkeypatch.setattr(av_module, "FSDD_URL", archive.as_uri())

    _, y = sst2("dev")
    assert len(y) == 872 and (cache / "sst2" / "dev.tsv").is_file()
    pairs = av_digits_pairs("test")
    assert pairs[:5] == PINNED_FIRST_PAIRS["test"]
    assert len(list((cache / "fsdd" / "recordings").iterdir())) == 3000
    assert sorted(p.name for p in (cache / "fsdd").iterdir()) == ["recordings"]  # cleaned up
    assert (cache / "mnist" / "mnist.npz").is_file()


# ---------------------------------------------------------------- SST-2


@pytest.mark.parametrize("split,rows", [("train", 67349), ("dev", 872), ("test", 1821)])
def test_sst2_rows_and_labels(data_dir, split, rows):
    x, y = sst2(split, data_dir=data_dir)
    assert set(x) == {"text"} and x["text"].dtype == object and y.dtype == np.int64
    assert len(x["text"]) == len(y) == rows
    assert set(y.tolist()) == {0, 1}
    assert all(isinstance(t, str) and t and "\t" not in t and "\r" not in t for t in x["text"])


def test_sst2_first_rows_and_dataset(data_dir):
    x, y = sst2("train", data_dir=data_dir)
    assert x["text"][0] == "hide new secretions from the parental units" and y[0] == 0
    x, y = sst2("test", data_dir=data_dir)
    assert x["text"][0] == "no movement , no yuks , not much of anything ." and y[0] == 0
    ds = sst2_dataset("dev", data_dir=data_dir, batch_size=100, shuffle=True, seed=1)
    texts, labels = next(iter(ds))
    assert texts["text"].shape == (100,) and labels.dtype.name == "int64"
    again, _ = next(iter(sst2_dataset("dev", data_dir=data_dir, batch_size=100, shuffle=True,
                                      seed=1)))
    assert texts["text"].numpy().tolist() == again["text"].numpy().tolist()


# ---------------------------------------------------------------- synthetic


def _small(**kwargs):
    kwargs.setdefault("num_train", 60)
    kwargs.setdefault("num_test", 20)
    return synthetic(**kwargs)


def test_synthetic_shapes_types_and_decoding():
    (x, y), (x_test, y_test) = _small()
    assert set(x) == {"image", "audio", "text"}
    assert y.dtype == np.int64 and y.shape == (60,) and y_test.shape == (20,)
    assert np.bincount(y, minlength=10).tolist() == [6] * 10  # balanced
    for split in (x, x_test):
        assert all(v.dtype == object for v in split.values())
    image = np.array(Image.open(io.BytesIO(x["image"][0])))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    with wave.open(io.BytesIO(x["audio"][0])) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (
            1, 2, 8000, 4000)
    assert isinstance(x["text"][0], str) and x["text"][0]


def test_synthetic_is_deterministic():
    a = _small(seed=3)
    b = _small(seed=3)
    c = _small(seed=4)
    for (xa, ya), (xb, yb), (xc, _) in zip(a, b, c, strict=True):
        assert np.array_equal(ya, yb)
        for m in xa:
            assert xa[m].tolist() == xb[m].tolist()
            assert xa[m].tolist() != xc[m].tolist()


def test_synthetic_modality_subsets_match_full():
    (full, y), _ = _small()
    (sub, y_sub), _ = _small(modalities=("audio", "image"))
    assert set(sub) == {"image", "audio"} and np.array_equal(y, y_sub)
    assert sub["image"].tolist() == full["image"].tolist()
    assert sub["audio"].tolist() == full["audio"].tolist()
    (text_only, _), _ = _small(modalities=("text",))
    assert set(text_only) == {"text"}
    with pytest.raises(ValueError, match="modalities"):
        _small(modalities=("video",))


def _bayes_accuracy(keys, labels):
    """Plug-in Bayes-optimal accuracy of predicting labels from discrete keys."""
    table = Counter(zip(keys, labels.tolist(), strict=True))
    best = Counter()
    for (key, _), count in table.items():
        best[key] = max(best[key], count)
    return sum(best.values()) / len(labels)


@pytest.mark.parametrize("num_classes", [2, 3, 4, 10, 16, 30])
def test_synthetic_partial_evidence(num_classes):
    num = 40 * num_classes
    (_, y, factors), _ = synthetic(num_classes=num_classes, num_train=num, num_test=1,
                                   modalities=("text",), return_factors=True)
    analytic = modality_bayes_accuracy(num_classes)
    single = {m: _bayes_accuracy(factors[m].tolist(), y) for m in ("image", "audio", "text")}
    for m, acc in single.items():
        if num_classes == 2:  # Latent coin: each modality alone is at chance.
            assert acc < 0.6
        else:
            assert acc == pytest.approx(analytic[m], abs=0.01)
        assert analytic[m] <= 0.7
    assert analytic["fused"] == 1.0
    all_three = list(zip(*(factors[m].tolist() for m in ("image", "audio", "text")), strict=True))
    assert _bayes_accuracy(all_three, y) == 1.0
    if num_classes >= 3:  # Any two modalities identify the class.
        for a, b in (("image", "audio"), ("image", "text"), ("audio", "text")):
            pair = list(zip(factors[a].tolist(), factors[b].tolist(), strict=True))
            assert _bayes_accuracy(pair, y) == 1.0


def test_synthetic_ten_class_design():
    assert modality_bayes_accuracy(10) == {"image": 0.4, "audio": 0.3, "text": 0.4, "fused": 1.0}


def test_synthetic_signals_carry_their_factor():
    """The raw audio and text actually encode their factor (simple decoders recover it)."""
    (x, _, factors), _ = synthetic(num_classes=10, num_train=100, num_test=1,
                                   modalities=("audio", "text"), return_factors=True, noise=0.5)
    f_low, f_high = synthetic_module._F_LOW, 2400.0
    step = np.log2(f_high / f_low) / 2  # 10 classes: 3 pitch values.
    for wav, value in zip(x["audio"], factors["audio"], strict=True):
        samples = _pcm_samples(wav)
        peak = np.fft.rfftfreq(len(samples), 1 / 8000)[np.argmax(np.abs(np.fft.rfft(samples)))]
        assert round(np.log2(peak / f_low) / step) == value
    for text, value in zip(x["text"], factors["text"], strict=True):
        assert set(text.split()) & set(synthetic_module._WORDS[value])
        others = {w for v, ws in enumerate(synthetic_module._WORDS) if v != value for w in ws}
        assert not set(text.split()) & others
