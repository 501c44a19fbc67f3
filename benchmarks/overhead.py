"""Target 1: training overhead of mmkeras versus the hand-written Keras reference.

Builds shared/bench/reference_keras.py ``--small`` (its own ``build()``) and the
``reference_small`` preset through :func:`mmkeras.build_model` in one process, trains
both on the same in-memory arrays with the same optimizer (AdamW 1e-4), the same
loss (sparse categorical cross-entropy), batch, dtype and ``jit_compile`` setting,
and alternates one epoch of each for ``--reps`` rounds; reports the median samples/s.

Usage: KERAS_BACKEND=tensorflow python benchmarks/overhead.py [--batch 256] [--reps 7]
       [--jit_compile false] [--policy float32]
"""

import argparse
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import mmkeras  # noqa: E402
from benchmarks.common import load_reference, machine, median, timed, write_result  # noqa: E402
from benchmarks.presets import register_benchmark_presets  # noqa: E402

register_benchmark_presets()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=4, help="train steps per timed epoch")
    p.add_argument("--reps", type=int, default=7, help="alternating timed epochs per model")
    p.add_argument("--jit_compile", default="false", choices=["false", "true"])
    p.add_argument("--policy", default="float32")
    p.add_argument("--no_write", action="store_true")
    return p.parse_args(argv)


def make_data(ref, n, seed=0):
    """One set of random inputs in both models' layouts (same values)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (n, ref["IMG"], ref["IMG"], 3), dtype=np.uint8)
    text = rng.integers(1, ref["VOCAB"], (n, ref["T_TXT"]), dtype=np.int32)
    audio = rng.standard_normal((n, ref["T_AUD"], ref["MELS"])).astype("float32")
    y = rng.integers(0, ref["CLASSES"], (n,), dtype=np.int32)
    reference = {"image": image, "text": text, "audio": audio}
    # mmkeras features are what its preprocessing emits: images already in [-1, 1].
    features = {"image": image.astype("float32") / 127.5 - 1.0, "audio": audio, "text": text,
                "present": np.ones((n, 3), "float32")}
    return reference, features, y


def build_pair(ref, jit_compile):
    keras.utils.set_random_seed(0)
    reference = ref["build"]()
    reference.compile(optimizer=keras.optimizers.AdamW(1e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=jit_compile)
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model("reference_small", num_classes=ref["CLASSES"])
    # The mmkeras head ends in softmax (exported scores are probabilities), the
    # reference in logits: the same loss, each in its model's natural form.
    model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False),
                  metrics=[], jit_compile=jit_compile)
    return reference, model


def main(argv=None):
    args = parse_args(argv)
    keras.config.set_dtype_policy(args.policy)
    jit = args.jit_compile == "true"
    ref = load_reference(small=True)
    n = args.batch * args.steps
    x_ref, x_mm, y = make_data(ref, n)
    reference, model = build_pair(ref, jit)
    params = {"reference": int(reference.count_params()), "mmkeras": int(model.count_params())}
    runs = {"reference": (reference, x_ref), "mmkeras": (model, x_mm)}
    warmup = {}
    for name, (m, x) in runs.items():  # first epoch builds the train function
        warmup[name] = round(timed(lambda: m.fit(x, y, batch_size=args.batch, epochs=1, verbose=0))[0], 2)
    times = {name: [] for name in runs}
    for rep in range(args.reps):
        order = list(runs) if rep % 2 == 0 else list(runs)[::-1]
        for name in order:
            m, x = runs[name]
            times[name].append(timed(lambda: m.fit(x, y, batch_size=args.batch, epochs=1, verbose=0))[0])
    sps = {name: n / median(t) for name, t in times.items()}
    result = {
        "target": "1: mmkeras reference_small trains at >= 1.0x reference_keras.py --small",
        "batch": args.batch, "samples_per_epoch": n, "policy": args.policy, "jit_compile": jit,
        "reps": args.reps, "params": params, "first_epoch_s": warmup,
        "epoch_s": {k: [round(v, 4) for v in t] for k, t in times.items()},
        "samples_per_s": {k: round(v, 1) for k, v in sps.items()},
        "ratio_mmkeras_over_reference": round(sps["mmkeras"] / sps["reference"], 3),
        "machine": machine(),
    }
    print(json.dumps(result))
    if not args.no_write:
        write_result("overhead", result)
    return result


if __name__ == "__main__":
    main()
