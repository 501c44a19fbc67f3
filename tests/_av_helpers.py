"""Shared fixtures of the missing-modality, robustness and contrastive tests: tiny AV models, real data."""

import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks.presets import AV_AUDIO_PRE, AV_IMAGE_PRE

DATA_DIR = Path(os.environ.get("MMKERAS_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
TINY_IMAGE = {"preprocessing": AV_IMAGE_PRE, "tower": {"type": "image/cnn", "filters": [8], "dim": 16}}
TINY_AUDIO = {"preprocessing": AV_AUDIO_PRE, "tower": {"type": "audio/cnn", "filters": [8], "dim": 16}}


def tiny_av_preset(fusion="fusion/gated", **extra):
    return {"name": "tiny_av", "modalities": {"image": dict(TINY_IMAGE), "audio": dict(TINY_AUDIO)},
            "fusion": {"type": fusion, "dim": 16}, **extra}


def av_subset(n=64, split="train", variant="clean"):
    """The first n real AV-digits pairs (skips the test when the shared data is absent)."""
    if not (DATA_DIR / "mnist" / "mnist.npz").exists() or not (DATA_DIR / "fsdd" / "recordings").exists():
        pytest.skip(f"AV-digits data not found under {DATA_DIR} (set MMKERAS_DATA_DIR)")
    import mmkeras

    x, y = mmkeras.datasets.av_digits(split, variant, data_dir=DATA_DIR, download=False)
    return {k: v[:n] for k, v in x.items()}, np.asarray(y[:n])
