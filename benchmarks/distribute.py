"""Training throughput of the small tri-modal preset on CPU: 1 process, 2-device Mirrored, 2-worker MWMS.

Each configuration runs in fresh processes started by mmkeras.distribute.launch_local
(the 1-process and Mirrored runs are 1-worker jobs, which get the default strategy),
on the same cached, preprocessed synthetic data, with the same GLOBAL batch. Time is
measured over the epochs after the first (which includes tracing, the text
vocabulary adapt and filling the preprocessing cache).

What the numbers can show on a 2-core machine: that every strategy runs the same
model end to end and the per-step overhead each adds (replica bookkeeping for
Mirrored, gRPC all-reduce over loopback for MWMS). What they cannot show: scaling.
Two "devices" here are the same two cores, so more replicas cannot add compute; on
real GPUs/hosts the speed-up depends on compute per step vs all-reduce cost.

Usage:
    .venv/bin/python benchmarks/distribute.py [--examples 192] [--batch 32] [--epochs 3]
"""

import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PRESET = "image_audio_text_small"


def run_config(mode, examples, batch, epochs):
    """One worker of one configuration; returns timing (must be importable by the launcher)."""
    import tensorflow as tf

    if mode == "mirrored":  # before TensorFlow initialises its devices
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    import mmkeras
    import mmkeras.distribute

    strategy = (mmkeras.distribute.strategy("mirrored", devices=["/cpu:0", "/cpu:1"]) if mode == "mirrored"
                else mmkeras.distribute.strategy("auto"))
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = mmkeras.build_model(PRESET, num_classes=10, batch_size=batch)
    (x, y), _ = mmkeras.datasets.synthetic(num_classes=10, num_train=examples, num_test=0)
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(x, y, epochs=epochs, shuffle=False, verbose=0, callbacks=[Timer()])
    steady = times[1:]
    steps = -(-examples // batch)
    return {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
            "per_replica_batch": batch // strategy.num_replicas_in_sync, "global_batch": batch,
            "epoch_s": [round(t, 3) for t in times],
            "samples_per_s": round(examples * len(steady) / sum(steady), 1),
            "step_ms": round(1000 * sum(steady) / (len(steady) * steps), 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=192)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "distribute.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(HERE))
    import keras
    import tensorflow as tf

    import mmkeras.distribute

    target = os.path.join(HERE, "distribute.py") + ":run_config"
    kwargs = dict(examples=args.examples, batch=args.batch, epochs=args.epochs)
    configs = {  # name: (workers, mode, TF threads per worker); every row uses both cores
        "1_process": (1, "single", 2),
        "mirrored_2_devices": (1, "mirrored", 2),
        "mwms_2_workers": (2, "multi_worker", 1),
    }
    results = {}
    for name, (workers, mode, threads) in configs.items():
        load = os.getloadavg()[0]
        values = mmkeras.distribute.launch_local(workers, target, kwargs={**kwargs, "mode": mode}, timeout=1800,
                                                 threads_per_worker=threads)
        results[name] = {**values[0], "workers": workers, "threads_per_worker": threads,
                         "load_avg_1min_before": round(load, 2)}
        print(name, json.dumps(results[name]), flush=True)
    report = {
        "benchmark": "benchmarks/distribute.py", "preset": PRESET, **kwargs,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "tensorflow": tf.__version__,
                    "keras": keras.__version__},
        "note": ("2 CPU cores shared by every configuration: the numbers show correctness and per-step "
                 "overhead of each strategy, not scaling. The machine was shared with other jobs "
                 "(see load_avg_1min_before)."),
        "results": results,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
