"""Helpers of the performance benchmarks: the reference model, timing, JSON output."""

import argparse
import ast
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from benchmarks._files import write_json

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "bench" / "reference_keras.py"


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


def median(values):
    return statistics.median(values)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def machine():
    """Where the numbers come from (CPU model, cores, load at start, versions)."""
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import keras
    info = {"cpu": cpu, "cores": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend()}
    if os.environ.get("MMKERAS_BENCH_NOTE"):  # e.g. "machine shared with another job"
        info["note"] = os.environ["MMKERAS_BENCH_NOTE"]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        info["tensorflow"] = tf.__version__
    return info


def write_result(name, result):
    """Writes benchmarks/results/<name>.json with the command line next to the numbers."""
    result = {"command": " ".join([Path(sys.executable).name, "-m", f"benchmarks.{name}"] + sys.argv[1:]),
              **result}
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    write_json(path, result)
    print("wrote", path)
    return path
