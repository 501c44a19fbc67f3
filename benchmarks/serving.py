"""Serving latency: the exported ``serving_default`` (TF1 session, as TF Serving runs it) vs ``model.predict``.

Exports ``image_audio_text_small`` (10 classes) to a temporary directory, loads it
with ``tf.compat.v1.saved_model.loader.load`` in its own graph and session, and
feeds raw bytes through the signature's tensor names, like the C++ server. The
Keras path is ``model.predict`` on the same raw dict (preprocessing in tf.data).
Both are timed in alternating rounds, so CPU contention from other processes hits
both alike; medians are reported.

Example request: a 64x64 RGB PNG, a 1 s 8 kHz mono 16-bit WAV, an 8-word caption.

``--compare_export DIR`` also times another export of the same preset (say, one
written by an older mmkeras) in the same rounds, to measure what a change costs.

``--preset image_audio_text_pretrained`` times the preset with pretrained towers
(EfficientNet-Lite0 at 224x224, MiniLM over 32 WordPiece tokens) instead.

Usage: python benchmarks/serving.py [--preset NAME] [--rounds 5] [--b1_per_round 40] [--b32_per_round 4]
       [--keras_per_round 2] [--compare_export DIR] [--out benchmarks/results/serving.json]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a script from anywhere

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import mmkeras  # noqa: E402
from benchmarks.common import REPO, machine, write_json  # noqa: E402
from mmkeras.codecs import (
    encode_png,  # noqa: E402
    encode_wav,  # noqa: E402
)

PRESET = "image_audio_text_small"
CAPTION = "a small grey bird sings near the river today"
NOTES = ("Wall times are medians over alternating rounds. The 2-core machine is shared: a load average above 2 "
         "means other processes competed for the CPU, inflating wall times; cpu_*_ms is this process's CPU time "
         "per call, less sensitive to that. model.predict builds a tf.data pipeline (and traces preprocessing) "
         "on every call, which dominates its batch-1 time.")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=PRESET, help="a tri-modal preset (image, audio, text)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of graph / Keras timing")
    p.add_argument("--b1_per_round", type=int, default=40, help="batch-1 calls of the exported graph per round")
    p.add_argument("--b32_per_round", type=int, default=4, help="batch-32 calls of the exported graph per round")
    p.add_argument("--keras_per_round", type=int, default=2,
                   help="model.predict calls per round and batch size (each builds a tf.data pipeline: slow)")
    p.add_argument("--compare_export", default=None,
                   help="a SavedModel version directory of the same preset, timed alongside (graph only)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serving.json"))
    return p.parse_args(argv)


def raw_batch(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 8000
    return {
        "image": [encode_png(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)],
        "audio": [encode_wav(0.3 * np.sin(2 * np.pi * (300 + 10 * i) * t) + 0.01 * rng.standard_normal(8000), 8000)
                  for i in range(n)],
        "text": [CAPTION] * n,
    }


class SessionSignature:
    """A SavedModel signature run through tensor names in a TF1 session (what TF Serving does)."""

    def __init__(self, path, signature="serving_default"):
        self.graph = tf.Graph()
        self.sess = tf.compat.v1.Session(graph=self.graph)
        meta = tf.compat.v1.saved_model.loader.load(self.sess, ["serve"], path)
        sig = meta.signature_def[signature]
        self.inputs = {k: v.name for k, v in sig.inputs.items()}
        self.fetches = {k: v.name for k, v in sig.outputs.items()}

    def __call__(self, raw):
        return self.sess.run(self.fetches, {self.inputs[k]: np.array(v, dtype=object) for k, v in raw.items()})


def timed(fn, arg, n):
    """``n`` calls -> list of (wall s, process CPU s); CPU time is less sensitive to other users' load."""
    out = []
    for _ in range(n):
        wall, cpu = time.perf_counter(), time.process_time()
        fn(arg)
        out.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def summary(samples, batch):
    s = np.asarray(samples)
    wall, cpu = s[:, 0], s[:, 1]
    return {"calls": int(len(s)), "p50_ms": float(np.median(wall) * 1e3),
            "p90_ms": float(np.percentile(wall, 90) * 1e3), "mean_ms": float(wall.mean() * 1e3),
            "cpu_p50_ms": float(np.median(cpu) * 1e3),
            "examples_per_s_at_p50": float(batch / np.median(wall))}


def main(argv=None):
    args = parse_args(argv)
    info = {"command": "python " + " ".join(["benchmarks/serving.py"] + sys.argv[1:]), "machine": machine(),
            "notes": NOTES,
            "preset": args.preset, "request": "64x64 RGB PNG + 1 s 8 kHz mono 16-bit WAV + 8-word caption"}
    model = mmkeras.build_model(args.preset, num_classes=10)
    if model.mm_config["modalities"]["text"]["preprocessing"]["tokenizer"] == "vectorize":  # WordPiece: fixed
        model.adapt({"text": [CAPTION, "another caption about a dog", "a third one"]})
    one, b32 = raw_batch(1), raw_batch(32, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = mmkeras.export_saved_model(model, os.path.join(tmp, "bench"))
        info["export_s"] = time.perf_counter() - start
        graph = SessionSignature(path)
        start = time.perf_counter()
        first = graph(one)
        info["graph_first_call_s"] = time.perf_counter() - start  # what warm-up requests pay at load
        keras_scores = model.predict(one, verbose=0)
        info["max_abs_diff_scores"] = float(np.abs(first["scores"] - keras_scores).max())
        other = SessionSignature(args.compare_export) if args.compare_export else None
        for _ in range(5):
            graph(one), graph(b32)
            if other is not None:
                other(one), other(b32)
        model.predict(one, verbose=0), model.predict(b32, verbose=0)
        times = {"graph_b1": [], "keras_b1": [], "graph_b32": [], "keras_b32": [], "other_b1": [], "other_b32": []}
        for _ in range(args.rounds):
            times["graph_b1"] += timed(graph, one, args.b1_per_round)
            times["keras_b1"] += timed(lambda x: model.predict(x, verbose=0), one, args.keras_per_round)
            times["graph_b32"] += timed(graph, b32, args.b32_per_round)
            times["keras_b32"] += timed(lambda x: model.predict(x, verbose=0), b32, args.keras_per_round)
            if other is not None:
                times["other_b1"] += timed(other, one, args.b1_per_round)
                times["other_b32"] += timed(other, b32, args.b32_per_round)
    info["load_avg_at_end"] = list(os.getloadavg())
    paths = [("exported_graph_session", "graph"), ("keras_model_predict", "keras")]
    if other is not None:
        info["compare_export"] = args.compare_export
        paths.append(("compared_export_session", "other"))
    info["results"] = {
        name: {"batch_1": summary(times[f"{key}_b1"], 1), "batch_32": summary(times[f"{key}_b32"], 32)}
        for name, key in paths
    }
    g1 = info["results"]["exported_graph_session"]["batch_1"]["p50_ms"]
    k1 = info["results"]["keras_model_predict"]["batch_1"]["p50_ms"]
    info["targets"] = {"graph_b1_p50_le_keras_b1_p50": g1 <= k1, "graph_b1_p50_le_25ms": g1 <= 25.0}
    write_json(args.out, info)
    for path_name, res in info["results"].items():
        for batch, r in res.items():
            print(f"{path_name:24s} {batch:8s} p50 {r['p50_ms']:8.2f} ms  p90 {r['p90_ms']:8.2f} ms  "
                  f"cpu p50 {r['cpu_p50_ms']:8.2f} ms  {r['examples_per_s_at_p50']:8.1f} examples/s")
    print(f"load average start {info['machine']['load_avg_at_start']}, end {info['load_avg_at_end']}; "
          f"written to {args.out}")
    return info


if __name__ == "__main__":
    main()
