"""Target 2: the tf.data input pipeline versus a per-example Python loop, and feature caching.

Part A turns AV-digits raw bytes (PNG + WAV) into the ``image_audio_small`` features
two ways, alternating, median of ``--reps``: mmkeras's ``tf.data`` pipeline
(``MultimodalModel.make_dataset``: batch 256, parallel map of
``Preprocessor.preprocess_batch``, prefetch) and a plain Python loop with PIL /
soundfile / numpy doing the same decode, resize, normalise, trim/pad and log-mel.
It reports the end-to-end rate (pipeline build and start included) and the
steady-state rate after the first batch.

Part B compares ``fit(raw, y, cache=True)`` (preprocesses once before epoch 1 and
keeps the features in memory) with ``fit(features, y)`` on features from
``model.preprocess(raw)``, per-epoch samples/s and whole-fit wall time,
alternating the two fits.

Usage: PYTHONPATH=. python -m benchmarks.pipeline [--n 10000] [--reps 3] [--fit_n 2000] [--epochs 4] [--rounds 2]
"""

import argparse
import io
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

import mmkeras  # noqa: E402
from benchmarks.common import machine, median, timed, write_result  # noqa: E402

PRESET = "image_audio_small"
DATA_DIR = os.environ.get("MMKERAS_DATA_DIR", str(mmkeras.__path__[0] + "/../../shared/data"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000, help="examples converted in part A")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--fit_n", type=int, default=2000, help="training examples in part B")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2, help="alternating fit rounds in part B")
    p.add_argument("--data_dir", default=DATA_DIR)
    p.add_argument("--no_write", action="store_true")
    return p.parse_args(argv)


class PythonLoop:
    """The straightforward per-example loop: PIL + soundfile + numpy, same maths as mmkeras."""

    def __init__(self, config):
        self.img = config["image"]["preprocessing"]
        a = config["audio"]["preprocessing"]
        self.rate = a["sample_rate"]
        self.num_samples = round(a["duration_s"] * self.rate)
        self.frame = round(a["frame_length_ms"] * self.rate / 1000)
        self.step = round(a["frame_step_ms"] * self.rate / 1000)
        self.fft = 2 ** int(np.ceil(np.log2(self.frame)))
        self.window = np.hanning(self.frame + 1)[:-1].astype("float32")  # periodic Hann, as tf.signal
        fmax = a["fmax"] or self.rate / 2
        self.mel = tf.signal.linear_to_mel_weight_matrix(
            a["n_mels"], self.fft // 2 + 1, self.rate, a["fmin"], fmax).numpy()

    def image(self, png):
        im = Image.open(io.BytesIO(png)).convert("RGB")
        h, w = self.img["height"], self.img["width"]
        scale = max(h / im.height, w / im.width)  # "crop": fill, then centre crop
        rh, rw = max(h, round(im.height * scale)), max(w, round(im.width * scale))
        im = im.resize((rw, rh), Image.BILINEAR)
        top, left = (rh - h) // 2, (rw - w) // 2
        return np.asarray(im.crop((left, top, left + w, top + h)), np.float32) / 255.0

    def audio(self, wav):
        samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
        if rate != self.rate:  # FFT resampling, as mmkeras does
            n_out = round(len(samples) * self.rate / rate)
            spec = np.fft.rfft(samples)[: n_out // 2 + 1]
            samples = np.fft.irfft(spec, n_out).astype("float32") * n_out / len(samples)
        samples = np.pad(samples[: self.num_samples], (0, max(0, self.num_samples - len(samples))))
        count = 1 + (self.num_samples - self.frame) // self.step
        idx = np.arange(self.frame)[None, :] + self.step * np.arange(count)[:, None]
        stft = np.fft.rfft(samples[idx] * self.window, self.fft)
        return np.log(np.abs(stft).astype("float32") @ self.mel + 1e-6)

    def __call__(self, images, audios):
        feats = {"image": [], "audio": []}
        for png, wav in zip(images, audios):
            feats["image"].append(self.image(png))
            feats["audio"].append(self.audio(wav))
        return {k: np.stack(v) for k, v in feats.items()}


def tfdata_features(model, x):
    """Raw bytes -> features through mmkeras's tf.data pipeline, fully materialised.

    Returns ``(count, seconds after the first batch, examples in the first batch)``:
    the first batch also pays the pipeline's one-time start (function
    instantiation, ~0.5-1 s), the rest is the steady-state rate.
    """
    ds = model.make_dataset({m: list(v) for m, v in x.items()}, batch_size=256)
    count, t_first = 0, None
    for batch in ds:
        count += int(batch["present"].shape[0])
        if t_first is None:
            t_first, first = time.perf_counter(), count
    return count, time.perf_counter() - t_first, first


def part_a(model, x, args):
    n = min(args.n, len(next(iter(x.values()))))
    x = {k: v[:n] for k, v in x.items()}
    loop = PythonLoop(model.mm_config["modalities"])
    # Agreement check: both paths give the same features (up to resize details).
    ref = model.preprocess({k: v[:8] for k, v in x.items()})
    mine = loop(x["image"][:8], x["audio"][:8])
    diff = {k: float(np.max(np.abs(ref[k] - mine[k]))) for k in mine}
    tfdata_features(model, {k: v[:256] for k, v in x.items()})  # trace the batch function once
    times, steady = {"tf_data": [], "python_loop": []}, []
    for rep in range(args.reps):
        runs = [("tf_data", lambda: tfdata_features(model, x)),
                ("python_loop", lambda: loop(x["image"], x["audio"]))]
        for name, fn in (runs if rep % 2 == 0 else runs[::-1]):
            seconds, out = timed(fn)
            times[name].append(seconds)
            if name == "tf_data":
                steady.append((n - out[2]) / out[1])
    rate = {k: n / median(v) for k, v in times.items()}
    return {"examples": n, "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
            "examples_per_s_end_to_end": {k: round(v, 1) for k, v in rate.items()},
            "tf_data_steady_examples_per_s": [round(r, 1) for r in steady],
            "ratio_steady_tf_data_over_python": round(median(steady) / rate["python_loop"], 2),
            "ratio_end_to_end_tf_data_over_python": round(rate["tf_data"] / rate["python_loop"], 2),
            "max_abs_feature_diff_first8": diff}


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t0)


def part_b(x, y, args):
    x = {k: v[: args.fit_n] for k, v in x.items()}
    y = y[: args.fit_n]
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model(PRESET, num_classes=10)
    model.compile()
    features = model.preprocess(x)
    batch = model.mm_config["training"]["batch_size"]
    epochs, walls = {"raw_cached": [], "features": []}, {"raw_cached": [], "features": []}
    for rnd in range(args.rounds):
        runs = [("raw_cached", x), ("features", features)]
        for name, data in (runs if rnd % 2 == 0 else runs[::-1]):
            timer = EpochTimer()
            wall, _ = timed(lambda: model.fit(data, y, batch_size=batch, epochs=args.epochs, cache=True, verbose=0,
                                              callbacks=[timer]))
            epochs[name].append(timer.times)
            walls[name].append(wall)
    n = len(y)
    later = {k: [t for run in v for t in run[1:]] for k, v in epochs.items()}  # epoch 2 onwards
    sps = {k: n / median(v) for k, v in later.items()}
    first_raw = median([run[0] for run in epochs["raw_cached"]])
    return {"preset": PRESET, "examples": n, "batch": batch, "epochs_per_fit": args.epochs, "rounds": args.rounds,
            "epoch_s": {k: [[round(t, 3) for t in run] for run in v] for k, v in epochs.items()},
            "samples_per_s_epoch2plus": {k: round(v, 1) for k, v in sps.items()},
            "raw_first_epoch_samples_per_s": round(n / first_raw, 1),
            "fit_wall_s": {k: [round(t, 2) for t in v] for k, v in walls.items()},
            "ratio_raw_cached_over_features": round(sps["raw_cached"] / sps["features"], 3)}


def main(argv=None):
    args = parse_args(argv)
    t0 = time.perf_counter()
    x, y = mmkeras.datasets.av_digits(split="train", variant="clean", size="small", data_dir=args.data_dir)
    load_s = time.perf_counter() - t0
    model = mmkeras.build_model(PRESET, num_classes=10)
    result = {"target": "2: tf.data >= 3x a Python loop; cached raw fit epoch 2 >= 0.9x features fit",
              "dataset": "av_digits(train, clean, small)", "load_s": round(load_s, 2)}
    result["conversion"] = part_a(model, x, args)
    print(json.dumps(result["conversion"]), flush=True)
    result["caching"] = part_b(x, y, args)
    print(json.dumps(result["caching"]), flush=True)
    result["machine"] = machine()
    if not args.no_write:
        write_result("pipeline", result)
    return result


if __name__ == "__main__":
    main()
