"""AV-digits: an MNIST handwritten digit paired with an FSDD spoken digit of the same class.

The pairing follows the shared data README exactly, so every run and every
system sees the same pairs:

- FSDD clips `{digit}_{speaker}_{index}.wav`: index 5..49 are train, 0..4 test.
- Split "train" uses MNIST `x_train` in order, "test" `x_test` in order.
  `rng = numpy.random.default_rng(0)` (train) / `(1)` (test). For each image in
  order, with label d: `clip = rng.choice(C_d)`, where `C_d` is Python's
  `sorted()` of that split's clip FILE NAMES (str, e.g. "3_theo_12.wav") whose
  digit is d. (Plain string sort: "0_george_10.wav" < "0_george_5.wav".)
- Size "small": the first 10,000 images of the split; "full": all of them.
- Variant "noisy": image `clip(x / 255 + N(0, 0.6), 0, 1)`, audio plus white
  noise at 0 dB SNR (noise std = the clip's RMS); noise from `default_rng(2)`
  (train) / `(3)` (test), image noise first then audio noise, example by example
  in order. Noise is drawn with `rng.normal(0, scale, shape)`.

Data files are looked up in the data directory (see `_download`) and their
sha256 sums verified. Missing files are downloaded from their public sources
into the per-user cache when allowed.
"""

import hashlib
import io
import os
import shutil
import tempfile
import wave
from pathlib import Path

import numpy as np

from mmkeras.codecs import encode_png, encode_wav
from mmkeras.datasets import _download

SPLITS = ("train", "test")
VARIANTS = ("clean", "noisy")
SIZES = ("small", "full")
SMALL_SIZE = 10_000

FSDD_SPLIT_INDICES = {"train": range(5, 50), "test": range(5)}
PAIRING_SEEDS = {"train": 0, "test": 1}
NOISE_SEEDS = {"train": 2, "test": 3}
IMAGE_NOISE_STD = 0.6
SAMPLE_RATE = 8000

FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FSDD_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{FSDD_COMMIT}.zip"
# sha256 of all 3,000 wav files' bytes concatenated in sorted path order. The zip
# GitHub builds is not byte-stable, so the recordings inside it are what is checked,
# in memory, before anything is extracted.
FSDD_SHA256 = "ddb17656a0bca4c5ddace082be188ca630516dc2ef1110afe3c4e9cc71173de4"
FSDD_NUM_CLIPS = 3000
# Caps on the download (the archive is ~25 MB) and on what is read from it (clips are < 40 KB).
FSDD_MAX_ARCHIVE_BYTES = 256 << 20
FSDD_MAX_MEMBERS = 20_000
FSDD_MAX_CLIP_BYTES = 1 << 20
FSDD_MAX_CLIPS_BYTES = 200 << 20

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
# Known-good mnist.npz files. The shared copy was re-encoded once through PNG by a
# third party: same labels, pixels correlate 0.997 with the official bytes, so it
# has its own sum. A fresh download is the official keras file, whose sum differs.
# Both are accepted; pairing only depends on the labels, which are identical, but
# pixel-level results (and noisy-variant images) differ between the two files.
MNIST_SHA256 = {
    "8e6ec8c3abecfc33c4668f305fdb249c17c76318f87c4ace5870d17defce8071":
        "PNG re-encoded copy (github.com/quietlychris/tsuga@eacc9f62), the shared data",
    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1":
        "official keras mnist.npz (" + MNIST_URL + ")",
}

# Per-process caches, keyed by the directory or file state, so repeated loads
# read and verify each FSDD file and the MNIST archive once.
_FSDD_CACHE = {}
_MNIST_CACHE = {}
_SAMPLES_CACHE = {}


def _check_args(split, variant="clean", size="small"):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")


def _is_recording(member):
    head, _, name = member.rpartition("/")
    return head.endswith("recordings") and name.endswith(".wav") and "\\" not in name and name != ".wav"


def _download_fsdd(recordings):
    """Fetches the FSDD archive, verifies the recordings in memory, then writes them into place atomically."""
    parent = recordings.parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=parent, prefix=".fsdd-download-"))
    try:
        archive = _download.download_file(FSDD_URL, work / "fsdd.zip", max_bytes=FSDD_MAX_ARCHIVE_BYTES)
        members = _download.read_zip_members(
            archive, _is_recording, max_members=FSDD_MAX_MEMBERS, max_member_bytes=FSDD_MAX_CLIP_BYTES,
            max_total_bytes=FSDD_MAX_CLIPS_BYTES)
        clips = {member.rpartition("/")[2]: data for member, data in members.items()}
        _verify_clips(clips, f"{FSDD_URL} (recordings/*.wav)")  # before anything is extracted
        staged = work / "recordings"
        staged.mkdir()
        for name, data in clips.items():
            (staged / name).write_bytes(data)
        os.replace(staged, recordings)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _verify_clips(clips, what):
    """Checks the sha256 of the clips' bytes concatenated in sorted name order; returns them sorted."""
    names = sorted(clips)
    digest = hashlib.sha256()
    for name in names:
        digest.update(clips[name])
    actual = digest.hexdigest()
    if actual != FSDD_SHA256:
        raise _download.checksum_error(
            f"{what} ({len(names)} wav files concatenated in sorted name order; expected "
            f"{FSDD_NUM_CLIPS})", FSDD_SHA256, actual)
    return {name: clips[name] for name in names}


def _read_recordings(recordings, what):
    """Reads every wav file (sorted names) and checks the concatenated sha256."""
    names = sorted(n for n in os.listdir(recordings) if n.endswith(".wav"))
    return _verify_clips({name: (recordings / name).read_bytes() for name in names}, what)


def load_fsdd(data_dir=None, download=None):
    """All FSDD clips as `{file name: wav bytes}`, verified against the README sha256.

    Every file is read once per process (cached by directory and its mtime); the
    read doubles as the checksum pass (3,000 files, 27 MB, well under a second
    when the files are in the OS cache), so no stamp file is written and
    read-only data directories work.

    Args:
        data_dir: data directory (see `av_digits`).
        download: True / False / None (default: only into the per-user cache).

    Returns:
        dict str -> bytes, in sorted name order.

    Raises:
        FileNotFoundError: no `fsdd/recordings` folder (names the directory).
        ValueError: sha256 mismatch (names the folder and both sums).

    Example:
    ```python
    clips = load_fsdd("../shared/data")
    clips["0_george_0.wav"][:4]  # b'RIFF'
    ```
    """
    root, is_default = _download.resolve_data_dir(data_dir)
    recordings = root / "fsdd" / "recordings"
    if not recordings.is_dir() or not any(n.endswith(".wav") for n in os.listdir(recordings)):
        if not _download.download_allowed(download, is_default):
            raise _download.missing_error(root, "fsdd/recordings/*.wav",
                                          ", or pass download=True to fetch it")
        try:
            _download_fsdd(recordings)
        except OSError as e:
            raise FileNotFoundError(
                f"mmkeras: fsdd/recordings/*.wav not found in data directory {root}, and "
                f"downloading {FSDD_URL} failed ({e}). Offline? Copy the recordings there or "
                "point data_dir at a folder that has them.") from e
    key = (str(recordings.resolve()), recordings.stat().st_mtime_ns)
    if key not in _FSDD_CACHE:
        _FSDD_CACHE[key] = _read_recordings(recordings, recordings)
    return _FSDD_CACHE[key]


def load_mnist(data_dir=None, download=None):
    """MNIST from `mnist/mnist.npz`, verified against the known-good sums (`MNIST_SHA256`).

    Args:
        data_dir: data directory (see `av_digits`).
        download: True / False / None (default: only into the per-user cache),
            from the official keras URL.

    Returns:
        `((x_train, y_train), (x_test, y_test))`, uint8 images `[N, 28, 28]`,
        int64 labels.

    Example:
    ```python
    (x, y), _ = load_mnist("../shared/data")
    x.shape  # (60000, 28, 28)
    ```
    """
    root, is_default = _download.resolve_data_dir(data_dir)
    path = _download.ensure_file(root, "mnist/mnist.npz", tuple(MNIST_SHA256), url=MNIST_URL,
                                 download=_download.download_allowed(download, is_default))
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MNIST_CACHE:
        with np.load(path, allow_pickle=False) as f:
            _MNIST_CACHE[key] = (
                (f["x_train"], f["y_train"].astype(np.int64)),
                (f["x_test"], f["y_test"].astype(np.int64)))
    return _MNIST_CACHE[key]


def _clip_digit_index(name):
    digit, _speaker, index = name[: -len(".wav")].split("_")
    return int(digit), int(index)


def _clip_speaker(name):
    return name[: -len(".wav")].split("_")[1]


def av_digits_pairs(split="train", size="small", data_dir=None, download=None, speakers=None):
    """The AV-digits pairing: which FSDD clip goes with which MNIST image.

    Follows the module docstring (the shared data README) to the letter; with
    ``speakers``, the clip lists `C_d` hold only those speakers' clips (the
    leave-one-speaker-out benchmark), drawn the same way.

    Args:
        split: "train" or "test".
        size: "small" (first 10,000 images) or "full".
        data_dir: data directory (see `av_digits`).
        download: see `av_digits`.
        speakers: iterable of FSDD speaker names, or None (all six).

    Returns:
        list of `(image_index, clip_file_name, label)` tuples, in image order.

    Raises:
        ValueError: a speaker with no clips (names it and the known speakers).

    Example:
    ```python
    av_digits_pairs("train", data_dir="../shared/data")[0]  # (0, '5_....wav', 5)
    ```
    """
    _check_args(split, size=size)
    clips = load_fsdd(data_dir, download)
    (_, y_train), (_, y_test) = load_mnist(data_dir, download)
    labels = y_train if split == "train" else y_test
    if size == "small":
        labels = labels[:SMALL_SIZE]
    indices = FSDD_SPLIT_INDICES[split]
    if speakers is not None:
        speakers = set(speakers)
        known = {_clip_speaker(name) for name in clips}
        if not speakers or speakers - known:
            raise ValueError(f"speakers must be a non-empty subset of the FSDD speakers {sorted(known)}, "
                             f"got {sorted(speakers)}")
    by_digit = {d: [] for d in range(10)}
    for name in clips:
        digit, index = _clip_digit_index(name)
        if index in indices and (speakers is None or _clip_speaker(name) in speakers):
            by_digit[digit].append(name)
    # rng.choice(list) converts the list to an array on every call; converting once
    # gives the same draws, much faster.
    choices = {d: np.array(sorted(names)) for d, names in by_digit.items()}
    rng = np.random.default_rng(PAIRING_SEEDS[split])
    return [(i, str(rng.choice(choices[d])), d) for i, d in enumerate(labels.tolist())]


def _samples(name, wav_bytes):
    """Float64 samples in [-1, 1) of a 16-bit mono FSDD clip (cached per clip)."""
    if name not in _SAMPLES_CACHE:
        with wave.open(io.BytesIO(wav_bytes)) as w:
            if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SAMPLE_RATE):
                raise ValueError(f"mmkeras: {name} is not 16-bit mono {SAMPLE_RATE} Hz PCM")
            frames = w.readframes(w.getnframes())
        _SAMPLES_CACHE[name] = np.frombuffer(frames, "<i2").astype(np.float64) / 32768.0
    return _SAMPLES_CACHE[name]


def av_digits(split="train", variant="clean", size="small", data_dir=None, download=None, speakers=None):
    """Loads AV-digits: MNIST images paired with FSDD spoken digits of the same class.

    See the module docstring for the exact pairing and noise protocol. The clean
    variant's audio is the FSDD file's bytes unchanged and its image the MNIST
    array as a lossless grayscale PNG. The noisy variant's image is
    `round(255 * clip(x / 255 + N(0, 0.6), 0, 1))` as PNG, and its audio is
    written as a 32-bit IEEE-float WAV (`encode_wav(..., encoding="float",
    bits=32)`): at 0 dB SNR the sum often exceeds [-1, 1], and float keeps it
    exactly (16-bit PCM would have to clip). `mmkeras.preprocessing.audio`
    decodes it; `tf.audio.decode_wav` reads only 16-bit PCM.

    The data directory is, in order: `data_dir`, `$MMKERAS_DATA_DIR`, or
    `~/.cache/mmkeras/data` (honouring `$XDG_CACHE_HOME`), laid out as
    `fsdd/recordings/*.wav` and `mnist/mnist.npz`. Missing files are downloaded
    (FSDD from GitHub at commit 26eb9aaf, MNIST from the keras URL) only into the
    default cache unless `download=True`. sha256 sums are verified once per
    process per file state. A small split loads in about a second.

    Args:
        split: "train" or "test".
        variant: "clean" or "noisy".
        size: "small" (first 10,000 images) or "full" (60,000 train / 10,000 test).
        data_dir: str or `Path`, or None.
        download: True (fetch missing files), False (never) or None (only into
            the default per-user cache).
        speakers: iterable of FSDD speaker names, or None (all six): pair the
            images only with these speakers' clips (`av_digits_pairs`), e.g. a
            held-out speaker's test split.

    Returns:
        `(x, y)`: `x = {"image": object array of PNG bytes, "audio": object array
        of WAV bytes}`, `y` int64 labels (the digit).

    Raises:
        FileNotFoundError: data missing (the message names directory and file).
        ValueError: bad argument, or sha256 mismatch (names the file and both sums).

    Example:
    ```python
    x, y = mmkeras.datasets.av_digits("train", data_dir="../shared/data")
    len(y), x["image"][0][:4], x["audio"][0][:4]  # (10000, b'\\x89PNG', b'RIFF')
    ```
    """
    _check_args(split, variant, size)
    pairs = av_digits_pairs(split, size, data_dir, download, speakers=speakers)
    clips = load_fsdd(data_dir, download)
    (x_train, _), (x_test, _) = load_mnist(data_dir, download)
    images = x_train if split == "train" else x_test
    n = len(pairs)
    out_images = np.empty(n, dtype=object)
    out_audio = np.empty(n, dtype=object)
    labels = np.array([label for _, _, label in pairs], dtype=np.int64)
    if variant == "clean":
        for i, name, _ in pairs:
            out_images[i] = encode_png(images[i])
            out_audio[i] = clips[name]
    else:
        rng = np.random.default_rng(NOISE_SEEDS[split])
        for i, name, _ in pairs:
            image = images[i] / 255.0 + rng.normal(0.0, IMAGE_NOISE_STD, images[i].shape)
            out_images[i] = encode_png(np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))
            samples = _samples(name, clips[name])
            rms = np.sqrt(np.mean(samples**2))
            noisy = samples + rng.normal(0.0, rms, samples.shape)
            out_audio[i] = encode_wav(noisy, SAMPLE_RATE, bits=32, encoding="float")
    return {"image": out_images, "audio": out_audio}, labels


def av_digits_dataset(split="train", variant="clean", size="small", data_dir=None,
                      batch_size=None, shuffle=False, seed=None, download=None):
    """AV-digits as a `tf.data.Dataset` of `({"image": bytes, "audio": bytes}, label)`.

    Elements are raw encoded bytes (`tf.string`) and int64 labels; decoding and
    features are the preprocessing pipeline's job.

    Args:
        split: as in `av_digits`.
        variant: as in `av_digits`.
        size: as in `av_digits`.
        data_dir: as in `av_digits`.
        download: as in `av_digits`.
        batch_size: int to batch (last batch may be smaller), or None.
        shuffle: shuffle examples (full buffer) before batching, anew each epoch.
        seed: shuffle seed, for a reproducible order.

    Returns:
        `tf.data.Dataset`.

    Example:
    ```python
    ds = mmkeras.datasets.av_digits_dataset("test", batch_size=32, data_dir="../shared/data")
    x, y = next(iter(ds))  # x["image"].shape == (32,)
    ```
    """
    x, y = av_digits(split, variant, size, data_dir, download)
    return _download.to_dataset(x, y, batch_size, shuffle, seed)
