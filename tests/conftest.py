"""Shared fixtures: small raw datasets and one trained tri-modal model per session."""

from pathlib import Path

import numpy as np
import pytest

import mmkeras
from benchmarks.presets import register_benchmark_presets

# The suite builds the benchmark presets too (AV-digits, reference architecture): benchmarks/presets.py.
register_benchmark_presets()

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The slowest files, slowest first (per-file seconds from a --durations=0 run, idle 2-core machine).
# With --no-loadscope-reorder (run_tests.sh) xdist's loadfile hands out files in collection order,
# so starting these first keeps one worker from finishing a 5-minute file alone at the end
# (longest-processing-time-first). xdist's default order, most tests first, started the one-test
# files test_docs.py and test_first_hour.py last. Measured: 2,055 s vs 2,066 s, no real gain, as the
# two cores were already busy (those tests run subprocesses); kept so the order is known, not luck.
# test_jax_backend.py moved from 3rd to after test_tune.py: its CPU fell from 412 to 224 s (XLA_FLAGS).
SLOWEST_FILES = ["test_docs.py", "test_cli.py", "test_benchmark_presets.py",
                 "test_distribute_multiworker.py", "test_first_hour.py", "test_parts.py", "test_model_raw.py",
                 "test_presets.py", "test_tune.py", "test_jax_backend.py", "test_manifest.py", "test_export.py",
                 "test_distribute_mirrored.py", "test_explain.py", "test_serving_contract.py",
                 "test_pretrained_presets.py", "test_contrastive.py", "test_vae.py", "test_layer_contract.py",
                 "test_resume_exact.py", "test_waveform_augment.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise


@pytest.fixture(scope="session")
def shared_data_dir():
    if not DATA_DIR.exists():
        pytest.skip(f"real data not found at {DATA_DIR} (expected ../shared/data beside the repo)")
    return DATA_DIR


@pytest.fixture(scope="session")
def tiny_synthetic():
    """96 train / 32 test tri-modal examples, 4 classes."""
    return mmkeras.datasets.synthetic(num_classes=4, num_train=96, num_test=32, seed=1)


@pytest.fixture(scope="session")
def trained_trimodal(tiny_synthetic):
    """``image_audio_text_small`` fitted one epoch on raw tiny synthetic data."""
    (x, y), _ = tiny_synthetic
    model = mmkeras.build_model("image_audio_text_small", num_classes=4, class_names=["a", "b", "c", "d"],
                                seed=0)
    history = model.fit(x, y, validation_split=0.25, epochs=1, batch_size=16, verbose=0)
    return model, history


def random_features(model, batch=2, seed=0):
    """Random feature tensors for the model's feature inputs (no preprocessor or TensorFlow needed)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, tensor in model.backbone.input.items():
        shape, dtype = tensor.shape[1:], tensor.dtype
        if name == "present":
            out[name] = np.ones((batch,) + tuple(shape), "float32")
        elif dtype == "int32":
            out[name] = rng.integers(0, 20, (batch,) + tuple(shape)).astype("int32")
        else:
            out[name] = rng.random((batch,) + tuple(shape)).astype("float32")
    return out
