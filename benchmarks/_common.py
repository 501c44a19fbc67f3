"""Shared helpers of the benchmark scripts: machine description, timing, result files."""

import os
import platform
import subprocess
import time
from pathlib import Path

import keras
import numpy as np

from benchmarks._files import write_json, write_text  # noqa: F401  (re-exported for the scripts)

REPO = Path(__file__).resolve().parents[1]


def default_data_dir():
    return os.environ.get("MMKERAS_DATA_DIR") or str(REPO.parent / "shared" / "data")


def machine():
    """CPU model, core count and load: benchmark figures mean little without them."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    import tensorflow as tf

    info = {"cpu": model, "cores": os.cpu_count(), "load_avg_at_start": list(os.getloadavg()),
            "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "git_commit": commit, "platform": platform.platform()}
    if os.environ.get("MMKERAS_BENCH_NOTE"):  # e.g. "machine shared with the test suite"
        info["note"] = os.environ["MMKERAS_BENCH_NOTE"]
    return info


def cosine_adamw(peak_lr, total_steps, weight_decay=1e-4, warmup_steps=0):
    """AdamW with linear warm-up and cosine decay: converges further in few epochs than a constant rate."""
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else peak_lr, max(total_steps - warmup_steps, 1), alpha=0.02,
        warmup_target=peak_lr if warmup_steps else None, warmup_steps=warmup_steps)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay)


def accuracy(model, features, labels, batch_size=256):
    scores = model.predict(features, batch_size=batch_size, verbose=0)
    if isinstance(scores, dict):
        scores = scores[model.heads[0]["name"]]
    return float(np.mean(np.argmax(scores, axis=-1) == np.asarray(labels)))


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
