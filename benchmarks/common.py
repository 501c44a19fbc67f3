"""The one helper module of the benchmark scripts: machine description, timing, atomic result files.

Imports stay light at module level (the startup benchmark times ``import mmkeras``
itself); Keras is imported inside the functions that need it.
"""

import argparse
import ast
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO  # older scripts' name for it
REFERENCE = REPO.parent / "shared" / "bench" / "reference_keras.py"


# ---- result files -------------------------------------------------------------------------

def write_text(path, text):
    """Writes ``text`` to ``path`` atomically and durably (``mmkeras.utils.atomic``).

    Readers never see half a file, and a crash mid-write keeps the previous results.
    """
    from mmkeras.utils.atomic import atomic_write_text

    atomic_write_text(path, text)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=1, default=float) + "\n")


def write_result(name, result, module=None):
    """Writes benchmarks/results/<name>.json with the command line (script `module`, default `name`)."""
    result = {"command": " ".join([Path(sys.executable).name, "-m", f"benchmarks.{module or name}"] + sys.argv[1:]),
              **result}
    path = REPO / "benchmarks" / "results" / f"{name}.json"
    write_json(path, result)
    print("wrote", path)
    return path


# ---- where the numbers come from ------------------------------------------------------------

def default_data_dir():
    return os.environ.get("MMKERAS_DATA_DIR") or str(REPO.parent / "shared" / "data")


def machine():
    """CPU model, cores, load at start, versions and commit: benchmark figures mean little without them."""
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    import keras

    info = {"cpu": cpu, "cores": os.cpu_count(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend(),
            "git_commit": commit, "platform": platform.platform()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    if os.environ.get("MMKERAS_BENCH_NOTE"):  # e.g. "machine shared with the test suite"
        info["note"] = os.environ["MMKERAS_BENCH_NOTE"]
    return info


# ---- timing -------------------------------------------------------------------------------

def median(values):
    return statistics.median(values)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


# ---- training helpers ----------------------------------------------------------------------

def cosine_adamw(peak_lr, total_steps, weight_decay=1e-4, warmup_steps=0):
    """AdamW with linear warm-up and cosine decay: converges further in few epochs than a constant rate."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else peak_lr, max(total_steps - warmup_steps, 1), alpha=0.02,
        warmup_target=peak_lr if warmup_steps else None, warmup_steps=warmup_steps)
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay)


def markdown_header(title, results):
    """Title, command and machine lines of a results file (``results``: command, size, variant,
    limit, machine with load averages at start and end, elapsed_seconds)."""
    m = results["machine"]
    return [
        f"# {title}", "",
        f"Command: `{results['command']}` (size `{results['size']}`, variant `{results['variant']}`"
        + (f", first {results['limit']} examples per split" if results.get("limit") else "") + ").",
        f"Machine: {m['cpu']}, {m['cores']} cores, load average {m['load_avg_at_start'][0]:.1f} at start and "
        f"{m['load_avg_at_end'][0]:.1f} at end" + (f" ({m['note']})" if m.get("note") else "")
        + f"; Keras {m['keras']}, commit {m['git_commit']}. Elapsed {results['elapsed_seconds'] / 60:.1f} min.", "",
    ]


def fit_unlabelled(preset, features, epochs, seed, **overrides):
    """Builds a task trained without labels (contrastive, VAE) and fits it on ``features`` with the
    preset's batch size and peak rate under :func:`cosine_adamw`; returns ``(model, history, seconds)``.
    ``overrides`` go to :func:`mmkeras.build_model`."""
    import mmkeras

    model = mmkeras.build_model(preset, seed=seed, **overrides)
    batch = model.mm_config["training"]["batch_size"]
    steps = epochs * int(np.ceil(len(features["present"]) / batch))
    model.compile(optimizer=cosine_adamw(model.mm_config["training"]["learning_rate"], steps,
                                         warmup_steps=min(100, steps // 10)))
    with Timer() as t:
        history = model.fit(features, epochs=epochs, batch_size=batch, verbose=2)
    return model, history, t.seconds


def accuracy(model, features, labels, batch_size=256):
    scores = model.predict(features, batch_size=batch_size, verbose=0)
    if isinstance(scores, dict):
        scores = scores[model.heads[0]["name"]]
    return float(np.mean(np.argmax(scores, axis=-1) == np.asarray(labels)))


# ---- the hand-written reference model -----------------------------------------------------

def load_reference(small, path=REFERENCE):
    """Returns the namespace of shared/bench/reference_keras.py without running its benchmark.

    The script runs its benchmark at import time, so only its imports, constants,
    classes and functions are executed (its own ``build()`` is what gets timed).
    """
    tree = ast.parse(Path(path).read_text())
    keep = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            keep.append(node)
        elif isinstance(node, ast.If) and "A.small" in ast.unparse(node.test):
            keep.append(node)  # the size constants
        elif isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "CLASSES":
            keep.append(node)
    namespace = {"A": argparse.Namespace(small=small), "__name__": "reference_keras"}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)
    return namespace
