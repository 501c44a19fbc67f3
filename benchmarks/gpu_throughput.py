"""Targets 5-6 (GPU): reference_base through mmkeras versus the hand-written reference.

NOT YET RUN ON A GPU: written and smoke-tested on CPU only (see benchmarks/README.md).

Under JAX (``KERAS_BACKEND=jax``), builds shared/bench/reference_keras.py's model
(its own ``build()``) and ``reference_base`` (or both ``--small`` variants) through
:func:`mmkeras.build_model`, trains each with ``model.fit`` on the same in-memory
arrays (AdamW 1e-4, sparse categorical cross-entropy, ``jit_compile=True``, the
same batch and dtype policy), alternating timed epochs, and prints one JSON line
per timed run plus a final ``RESULT`` line with samples/s, the mmkeras/reference
ratio (target >= 1.3x) and MFU (target >= 40%). Writes ``$OUT/gpu_throughput.json``
when ``OUT`` is set.

Usage: KERAS_BACKEND=jax python -m benchmarks.gpu_throughput [--batch 256]
       [--policy mixed_bfloat16] [--steps 8] [--reps 3] [--peak_tflops 989] [--small]
CPU smoke test: KERAS_BACKEND=jax python -m benchmarks.gpu_throughput --small --batch 8 --steps 2 --reps 1
"""

import argparse
import json
import os
import platform
import time

import keras
import numpy as np

from benchmarks.common import load_reference, median


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--policy", default="mixed_bfloat16")
    p.add_argument("--steps", type=int, default=8, help="train steps per timed epoch")
    p.add_argument("--reps", type=int, default=3, help="alternating timed epochs per model")
    p.add_argument("--peak_tflops", type=float, default=989.0,
                   help="dense bf16 peak of the accelerator (H100 SXM 989, H200 989)")
    p.add_argument("--small", action="store_true", help="reference_small sizes (CPU smoke test)")
    return p.parse_args(argv)


def make_data(ref, n):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (n, ref["IMG"], ref["IMG"], 3), dtype=np.uint8)
    text = rng.integers(1, ref["VOCAB"], (n, ref["T_TXT"]), dtype=np.int32)
    audio = rng.standard_normal((n, ref["T_AUD"], ref["MELS"])).astype("float32")
    y = rng.integers(0, ref["CLASSES"], (n,), dtype=np.int32)
    features = {"image": image.astype("float32") / 127.5 - 1.0, "audio": audio, "text": text,
                "present": np.ones((n, 3), "float32")}
    return {"image": image, "text": text, "audio": audio}, features, y


def build_models(ref, small):
    import mmkeras
    from benchmarks.presets import register_benchmark_presets

    register_benchmark_presets()
    keras.utils.set_random_seed(0)
    reference = ref["build"]()
    reference.compile(optimizer=keras.optimizers.AdamW(1e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model("reference_small" if small else "reference_base", num_classes=ref["CLASSES"])
    # mmkeras heads end in softmax; the reference in logits: the same loss in each model's form.
    model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False), metrics=[], jit_compile=True)
    return reference, model


def main(argv=None):
    args = parse_args(argv)
    keras.config.set_dtype_policy(args.policy)
    ref = load_reference(small=args.small)
    flops = 3 * 2 * ref["fwd_macs"]()  # per training sample, as reference_keras.py counts them
    n = args.batch * args.steps
    x_ref, x_mm, y = make_data(ref, n)
    reference, model = build_models(ref, args.small)
    runs = {"reference": (reference, x_ref), "mmkeras": (model, x_mm)}
    info = {"backend": keras.backend.backend(), "policy": args.policy, "batch": args.batch, "small": args.small,
            "train_gflops_per_sample": round(flops / 1e9, 3), "host": platform.node()}
    try:
        import jax
        info["devices"] = [str(d) for d in jax.devices()]
    except ImportError:
        pass
    first = {}
    for name, (m, x) in runs.items():  # compile
        t0 = time.perf_counter()
        m.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
        first[name] = round(time.perf_counter() - t0, 2)
    times = {name: [] for name in runs}
    for rep in range(args.reps):
        for name in (list(runs) if rep % 2 == 0 else list(runs)[::-1]):
            m, x = runs[name]
            t0 = time.perf_counter()
            m.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
            dt = time.perf_counter() - t0
            times[name].append(dt)
            print(json.dumps({"run": name, "rep": rep, "epoch_s": round(dt, 4),
                              "samples_per_s": round(n / dt, 1), **info}), flush=True)
    sps = {k: n / median(v) for k, v in times.items()}
    result = {**info, "params": {"reference": int(reference.count_params()), "mmkeras": int(model.count_params())},
              "first_epoch_s": first, "samples_per_s": {k: round(v, 1) for k, v in sps.items()},
              "ratio_mmkeras_over_reference": round(sps["mmkeras"] / sps["reference"], 3),
              "mfu_pct": {k: round(100 * v * flops / 1e12 / args.peak_tflops, 2) for k, v in sps.items()},
              "peak_tflops": args.peak_tflops}
    print("RESULT", json.dumps(result), flush=True)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "gpu_throughput.json"), "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
