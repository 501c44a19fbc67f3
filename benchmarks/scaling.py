"""Target 3: cost versus input size (audio duration, text length, image resolution) and peak RSS.

Audio: ``audio_small`` in long-clip mode (``max_windows = duration / 1 s``): each
clip is cut into 1 s windows, the audio tower runs on every window and pools over
the valid ones. One fresh subprocess per duration, so its peak RSS is that
duration's alone. Text: a text-only model with the ``image_audio_text_small`` text
transformer, ``sequence_length`` = the text length. Image: ``image_small``, PNG
inputs of growing size resized in the graph to 32x32.

Each configuration times, median of ``--reps``: preprocessing of raw bytes
(``Preprocessor.preprocess_batch`` in one traced ``tf.function``), ``predict``
(forward pass on the features) and one ``fit`` step (``train_on_batch``), on a batch
of ``--batch`` examples, and reports seconds per example.

Usage: python benchmarks/scaling.py [--durations 1,10,60,600] [--reps 3] [--batch 4]
       python benchmarks/scaling.py --child audio:600   (one audio run, prints JSON)
"""

import argparse
import io
import json
import math
import os
import resource
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

from benchmarks.common import machine, median, timed, write_result  # noqa: E402

RATE = 8000


def _measure(model, raw, y, reps, fit=True):
    import tensorflow as tf
    pre = tf.function(model.preprocessor.preprocess_batch)
    raw = {k: tf.constant(v) for k, v in raw.items()}
    features = pre(raw)  # trace once: what is timed is the steady-state cost
    features = {k: v.numpy() for k, v in features.items()}
    model.predict_on_batch(features)
    t = {"preprocess": [], "predict": []}
    if fit:  # a training step holds every window's activations for the backward pass
        model.train_on_batch(features, y)
        t["fit_step"] = []
    for _ in range(reps):
        t["preprocess"].append(timed(lambda: pre(raw)["present"].numpy())[0])
        t["predict"].append(timed(lambda: model.predict_on_batch(features))[0])
        if fit:
            t["fit_step"].append(timed(lambda: model.train_on_batch(features, y))[0])
    n = len(y)
    out = {k: round(median(v) / n, 5) for k, v in t.items()}
    out["total_predict"] = round(out["preprocess"] + out["predict"], 5)
    if fit:
        out["total_fit"] = round(out["preprocess"] + out["fit_step"], 5)
    return out


def audio_run(duration, batch, reps, fit=True):
    import mmkeras
    from mmkeras.codecs import encode_wav
    windows = max(1, math.ceil(duration / 1.0))
    model = mmkeras.build_model("audio_small", num_classes=10,
                                modalities={"audio": {"preprocessing": {"max_windows": windows}}})
    rng = np.random.default_rng(0)
    clips = [encode_wav(0.3 * rng.standard_normal(int(duration * RATE)), RATE) for _ in range(batch)]
    out = _measure(model, {"audio": clips}, np.arange(batch) % 10, reps, fit=fit)
    out.update({"fit": fit, "duration_s": duration, "windows": windows,
                "wav_mb_per_clip": round(len(clips[0]) / 2**20, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
    return out


def text_run(length, batch, reps):
    import mmkeras
    preset = mmkeras.get_preset("image_audio_text_small")
    text = dict(preset["modalities"]["text"])
    text["preprocessing"] = {**text["preprocessing"], "sequence_length": length}
    model = mmkeras.build_model({"name": f"text_{length}", "modalities": {"text": text},
                                 "fusion": {"type": "fusion/concat", "dim": 64}}, num_classes=10)
    words = [f"w{i}" for i in range(1000)]
    model.preprocessor.adapt([" ".join(words)])
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, length)) for _ in range(batch)]
    out = _measure(model, {"text": texts}, np.arange(batch) % 10, reps)
    out["tokens"] = length
    return out


def image_run(side, batch, reps):
    from PIL import Image

    import mmkeras
    model = mmkeras.build_model("image_small", num_classes=10)
    rng = np.random.default_rng(0)
    pngs = []
    for _ in range(batch):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    out = _measure(model, {"image": pngs}, np.arange(batch) % 10, reps)
    out.update({"side": side, "megapixels": round(side * side / 1e6, 3)})
    return out


def _child(spec, batch, reps, fit=True):
    kind, size = spec.split(":")
    if kind == "audio":
        result = audio_run(float(size), batch, reps, fit=fit)
    else:
        result = {"text": text_run, "image": image_run}[kind](int(size), batch, reps)
    print("CHILD", json.dumps(result), flush=True)


def _run_child(spec, args):
    cmd = [sys.executable, "-m", "benchmarks.scaling", "--child", spec, "--batch", str(args.batch),
           "--reps", str(args.reps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    line = next((x for x in out.stdout.splitlines() if x.startswith("CHILD")), None)
    if line is None:
        raise RuntimeError(f"{spec} failed:\n{out.stderr[-3000:]}")
    result = json.loads(line[6:])
    print(spec, json.dumps(result), flush=True)
    return result


def _linearity(rows, size_key, cost_key):
    """Least-squares fit cost/example = a + b * size; returns a, b and the max relative residual."""
    x = np.array([r[size_key] for r in rows], float)
    y = np.array([r[cost_key] for r in rows], float)
    b, a = np.polyfit(x, y, 1)
    fitted = a + b * x
    return {"intercept_s": round(float(a), 5), "slope_s_per_unit": round(float(b), 7),
            "max_rel_residual": round(float(np.max(np.abs(y - fitted) / y)), 3)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--durations", default="1,10,60,600")
    p.add_argument("--text_lengths", default="8,16,24,64,128,256")
    p.add_argument("--image_sides", default="32,128,256,512,1024")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--child", help="run one measurement in this process, e.g. audio:600")
    p.add_argument("--predict_only", action="store_true", help="with --child audio:N, skip the training step")
    p.add_argument("--no_write", action="store_true")
    args = p.parse_args(argv)
    if args.child:
        return _child(args.child, args.batch, args.reps, fit=not args.predict_only)
    result = {"target": "3: cost linear in input size; peak RSS of a 600 s clip < 2 GB",
              "batch": args.batch, "reps": args.reps, "units": "seconds per example (median)"}
    result["audio"] = [_run_child(f"audio:{d}", args) for d in args.durations.split(",")]
    result["text"] = [_run_child(f"text:{n}", args) for n in args.text_lengths.split(",")]
    result["image"] = [_run_child(f"image:{s}", args) for s in args.image_sides.split(",")]
    result["fit"] = {
        "audio_predict_vs_duration": _linearity(result["audio"], "duration_s", "total_predict"),
        "audio_fit_vs_duration": _linearity(result["audio"], "duration_s", "total_fit"),
        "text_predict_vs_tokens": _linearity(result["text"], "tokens", "total_predict"),
        "image_predict_vs_megapixels": _linearity(result["image"], "megapixels", "total_predict"),
    }
    result["machine"] = machine()
    print(json.dumps(result["fit"]))
    if not args.no_write:
        write_result("scaling", result)


if __name__ == "__main__":
    main()
