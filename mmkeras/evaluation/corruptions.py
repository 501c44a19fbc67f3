"""Corruptions of raw inputs for robustness checks (numpy, not graph code).

Each function takes an object array of raw values (PNG bytes, WAV bytes, str)
and returns a new one; empty values (absent modality) stay empty. Noise is
drawn from ``numpy.random.default_rng(seed)``, example by example, so a
corrupted test set is reproducible.
"""

import numpy as np
import tensorflow as tf

from mmkeras.codecs import encode_png, encode_wav
from mmkeras.preprocessing.audio import decode_wav


def gaussian_pixel_noise(images, std, seed=0):
    """Adds ``N(0, std)`` to pixels scaled to [0, 1], clips, re-encodes as PNG.

    Example:
    ```python
    noisy = gaussian_pixel_noise(x["image"], std=0.3)
    ```
    """
    rng = np.random.default_rng(seed)

    def corrupt(data):
        pixels = tf.io.decode_image(data, expand_animations=False).numpy()  # keeps the channel count
        noisy = np.clip(pixels / 255.0 + rng.normal(0.0, std, pixels.shape), 0.0, 1.0)
        return encode_png(np.rint(noisy * 255.0).astype(np.uint8))

    return _map_present(images, corrupt)


def _map_present(values, fn):
    """Applies ``fn`` to each non-empty value, in order (so seeded noise is reproducible)."""
    out = np.empty(len(values), dtype=object)
    for i, data in enumerate(values):
        out[i] = fn(data) if len(data) else data
    return out


def read_wav(data):
    """WAV bytes -> ``(float32 mono samples [N], sample_rate)`` through the model's own graph decoder.

    One WAV reader for the library: corruptions see exactly the samples the model
    sees (channels averaged, every supported encoding, the same named errors).
    """
    samples, rate = decode_wav(tf.constant(data))
    return samples.numpy().astype(np.float64), int(rate)


def white_noise_snr(clips, snr_db, seed=0):
    """Adds white noise at ``snr_db`` dB relative to each clip's RMS; writes float32 WAV.

    Float WAV keeps sums beyond [-1, 1] exactly (16-bit PCM would clip them).

    Example:
    ```python
    noisy = white_noise_snr(x["audio"], snr_db=0)   # noise as loud as the speech
    ```
    """
    rng = np.random.default_rng(seed)

    def corrupt(data):
        samples, rate = read_wav(data)
        rms = np.sqrt(np.mean(samples ** 2)) or 1e-4
        noisy = samples + rng.normal(0.0, rms / 10.0 ** (snr_db / 20.0), samples.shape)
        return encode_wav(noisy, rate, bits=32, encoding="float")

    return _map_present(clips, corrupt)


def word_dropout(texts, rate, seed=0):
    """Drops each whitespace-separated word with probability ``rate`` (keeps at least one).

    Example:
    ```python
    word_dropout(np.array(["a fine film"], dtype=object), rate=0.5)
    ```
    """
    rng = np.random.default_rng(seed)
    out = np.empty(len(texts), dtype=object)
    for i, text in enumerate(texts):
        words = str(text).split()
        if not words:
            out[i] = text
            continue
        keep = rng.random(len(words)) >= rate
        if not keep.any():  # an empty string would mean "absent", a different condition
            keep[rng.integers(len(words))] = True
        out[i] = " ".join(w for w, k in zip(words, keep) if k)
    return out


CORRUPTIONS = {
    "image": ("gaussian_noise_std", gaussian_pixel_noise, (0.2, 0.4, 0.6)),
    "audio": ("white_noise_snr_db", white_noise_snr, (20.0, 10.0, 0.0)),
    "text": ("word_dropout", word_dropout, (0.1, 0.3, 0.5)),
}
