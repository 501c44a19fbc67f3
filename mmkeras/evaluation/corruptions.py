"""Corruptions of raw inputs for robustness checks (numpy, not graph code).

Each modality declares its own corruption (:meth:`mmkeras.modalities.Modality.corrupt`,
its ``corruption`` name and default ``corruption_severities``); the robustness
evaluation asks the registry. The functions here are the built-in modalities'
corruptions under their own names. Each takes an object array of raw values (PNG
bytes, WAV bytes, str) and returns a new one; empty values (absent modality) stay
empty. Noise is drawn from ``numpy.random.default_rng(seed)``, example by example,
so a corrupted test set is reproducible.
"""

from mmkeras.modalities.audio import AudioModality, read_wav
from mmkeras.modalities.image import ImageModality
from mmkeras.modalities.text import TextModality

__all__ = ["gaussian_pixel_noise", "read_wav", "white_noise_snr", "word_dropout"]


def gaussian_pixel_noise(images, std, seed=0):
    """Adds ``N(0, std)`` to pixels scaled to [0, 1], clips, re-encodes as PNG.

    Example:
    ```python
    noisy = gaussian_pixel_noise(x["image"], std=0.3)
    ```
    """
    return ImageModality().corrupt(images, std, seed=seed)


def white_noise_snr(clips, snr_db, seed=0):
    """Adds white noise at ``snr_db`` dB relative to each clip's RMS; writes float32 WAV.

    Example:
    ```python
    noisy = white_noise_snr(x["audio"], snr_db=0)   # noise as loud as the speech
    ```
    """
    return AudioModality().corrupt(clips, snr_db, seed=seed)


def word_dropout(texts, rate, seed=0):
    """Drops each whitespace-separated word with probability ``rate`` (keeps at least one).

    Example:
    ```python
    word_dropout(np.array(["a fine film"], dtype=object), rate=0.5)
    ```
    """
    return TextModality().corrupt(texts, rate, seed=seed)
