"""BatchNorm settings of the conv towers: inference-mode accuracy after short training.

A model trained for a few hundred steps is used in inference mode (``evaluate``,
``predict``, the SavedModel), where BatchNormalization reads its moving statistics.
This script trains the same preset with several momentum settings, with and
without warm-started statistics, and with Keras' default 0.99 followed by a
recalibration of the statistics, and reports
per epoch: the accuracy ``fit`` logs (training mode), the inference-mode accuracy
on the same training data, and the test accuracy.

Scenarios (real data where we have it):

- ``av_image``: ``av_image_small`` on the 10,000 AV-digits training images,
  batch 64, 3 epochs, warm-up + cosine AdamW (as ``benchmarks/av_digits.py``);
- ``av_gated``: ``av_gated_small`` on the 10,000 pairs, 6 epochs, as in the benchmark;
- ``av_gated_1600``: the first 1,600 pairs, 4 epochs of 25 steps, the preset's compile
  defaults (the scenario of tests/test_batch_norm.py); tested on 2,000 test pairs;
- ``av_gated_480``: the first 480 pairs (a user's small data set), 8 epochs, compile
  defaults; tested on 2,000 test pairs;
- ``quickstart_image`` / ``quickstart_audio``: the quickstart's single-modality
  models (``image_small`` / ``audio_small``, synthetic data, 1,800 examples, 2 epochs).

Run from the repository root::

    PYTHONPATH=. .venv/bin/python benchmarks/bn_momentum.py --out benchmarks/results/bn_momentum.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

import mmkeras  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.presets import register_benchmark_presets  # noqa: E402
from mmkeras.evaluation.features import compute_features  # noqa: E402

register_benchmark_presets()  # av_image_small, av_gated_small

SCENARIOS = ("av_image", "av_gated", "av_gated_1600", "av_gated_480", "quickstart_image", "quickstart_audio")
# "<momentum>[+warm][+recalibrate]": plain Keras BatchNormalization unless "+warm"
# (WarmStartBatchNormalization, the towers' default); "+recalibrate" recomputes the
# statistics from training batches after every epoch. "0.5+warm" is the default.
SETTINGS = ("0.99", "0.99+recalibrate", "0.9", "0.99+warm", "0.9+warm", "0.8+warm", "0.5+warm")


def _features(model, x, n, cache, split):
    """Features of the first ``n`` examples, shared by presets with the same preprocessing."""
    key = (json.dumps(model.mm_config["modalities"], sort_keys=True), split, n)
    if key not in cache:
        cache[key] = compute_features(model, {m: x[m][:n] for m in model.modalities})
    return cache[key]


def load(scenario, data_dir, cache):
    """``(preset, train features, train labels, test features, test labels, epochs, cosine)``."""
    if scenario.startswith("av_"):
        if "av" not in cache:
            cache["av"] = [mmkeras.datasets.av_digits(s, data_dir=data_dir) for s in ("train", "test")]
        (x, y), (xt, yt) = cache["av"]
        preset, n, nt, epochs, cosine = {
            "av_image": ("av_image_small", len(y), len(yt), 3, True),
            "av_gated": ("av_gated_small", len(y), len(yt), 6, True),
            "av_gated_1600": ("av_gated_small", 1600, 2000, 4, False),
            "av_gated_480": ("av_gated_small", 480, 2000, 8, False),
        }[scenario]
    else:
        if "synthetic" not in cache:
            cache["synthetic"] = mmkeras.datasets.synthetic(num_classes=10, num_train=2000, num_test=500)
        (x, y), (xt, yt) = cache["synthetic"]
        preset = "image_small" if scenario == "quickstart_image" else "audio_small"
        n, nt, epochs, cosine = 1800, len(yt), 2, False
    model = mmkeras.build_model(preset, num_classes=10, compile=False)
    f, ft = _features(model, x, n, cache, "train"), _features(model, xt, nt, cache, "test")
    return preset, f, y[:n], ft, yt[:nt], epochs, cosine


def recalibrate(model, features, batch_size=64, max_batches=100):
    """Recomputes every BatchNorm's moving statistics as the mean over training batches.

    Runs the model in training mode (eagerly, no weight update) with the k-th
    batch weighted 1/k, so the statistics become the average batch statistics of
    the final weights.
    """
    bns = [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
    saved = [b.momentum for b in bns]
    n = len(next(iter(features.values())))
    for k, start in enumerate(range(0, min(n, batch_size * max_batches), batch_size), 1):
        for b in bns:
            b.momentum = 1.0 - 1.0 / k
        model({name: v[start:start + batch_size] for name, v in features.items()}, training=True)
    for b, m in zip(bns, saved):
        b.momentum = m


class PerEpoch(keras.callbacks.Callback):
    def __init__(self, f, y, ft, yt, recalibrate_each_epoch):
        super().__init__()
        self.data, self.recal, self.rows = (f, y, ft, yt), recalibrate_each_epoch, []

    def on_epoch_end(self, epoch, logs=None):
        f, y, ft, yt = self.data
        if self.recal:
            recalibrate(self.model, f)
        self.rows.append({"epoch": epoch + 1, "fit_accuracy": float(logs["accuracy"]),
                          "inference_train_accuracy": common.accuracy(self.model, f, y),
                          "test_accuracy": common.accuracy(self.model, ft, yt)})


def run(scenario, setting, data_dir, seed, cache):
    preset, f, y, ft, yt, epochs, cosine = load(scenario, data_dir, cache)
    keras.utils.set_random_seed(seed)
    momentum, *flags = setting.split("+")
    tower = {"bn_momentum": float(momentum), "bn_warm_start": "warm" in flags}
    model = mmkeras.build_model(preset, num_classes=10, seed=seed,
                                modalities={m: {"tower": tower} for m in mmkeras.get_preset(preset)["modalities"]})
    batch = model.mm_config["training"]["batch_size"]
    if cosine:
        steps = epochs * int(np.ceil(len(y) / batch))
        model.compile(optimizer=common.cosine_adamw(model.mm_config["training"]["learning_rate"], steps,
                                                     warmup_steps=min(100, steps // 10)))
    per_epoch = PerEpoch(f, y, ft, yt, "recalibrate" in flags)
    t0 = time.perf_counter()
    model.fit(f, y, epochs=epochs, batch_size=batch, verbose=0, callbacks=[per_epoch])
    return {"scenario": scenario, "preset": preset, "setting": setting, "train_examples": len(y),
            "test_examples": len(yt), "batch_size": batch,
            "steps": epochs * int(np.ceil(len(y) / batch)), "seconds": round(time.perf_counter() - t0, 1),
            "epochs": per_epoch.rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=common.default_data_dir())
    parser.add_argument("--out", default=str(common.REPO / "benchmarks" / "results" / "bn_momentum.json"))
    args = parser.parse_args(argv)
    results = {"benchmark": "bn_momentum", "command": "python benchmarks/bn_momentum.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "machine": common.machine(), "runs": []}
    cache = {}
    for scenario in args.scenarios:
        for setting in args.settings:
            record = run(scenario, setting, args.data_dir, args.seed, cache)
            results["runs"].append(record)
            print(f"{scenario:17s} {setting:17s} " + "  ".join(
                f"e{r['epoch']}: fit {r['fit_accuracy']:.3f} inf {r['inference_train_accuracy']:.3f} "
                f"test {r['test_accuracy']:.3f}" for r in record["epochs"]) + f"  ({record['seconds']} s)",
                flush=True)
            common.write_json(args.out, results)


if __name__ == "__main__":
    main()
