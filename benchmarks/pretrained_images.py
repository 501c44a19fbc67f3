"""Pretrained EfficientNet-Lite0 image tower vs the from-scratch image CNNs: few-shot Fashion-MNIST, AV-digits.

Commands (from the repository root; the weights: ``python -m mmkeras.weights install efficientnet_lite0``)::

    .venv/bin/python benchmarks/pretrained_images.py fashion   # 1,000 training images, full 10,000-image test
    .venv/bin/python benchmarks/pretrained_images.py av_digits # AV-digits clean/small

``fashion``: the first 100 training images of each class train; the next 100 of
each class pick the best epoch (early stopping on their accuracy, best weights
restored; the from-scratch CNN runs all its epochs, since its BatchNorm statistics
need hundreds of steps before validation means anything); the full test set is read
once at the end. The pretrained tower (``image_efficientnet_lite0`` at ``--size``
pixels, default 96, fine-tuned at a tenth of the rate of its head) is compared with
the from-scratch ``image_small`` CNN (32x32).

``av_digits``: the pretrained tower replaces the image CNN of ``av_image_small``
(image only) and ``av_concat_small`` (image + audio), same data, augmentation and
epochs; test accuracy and seconds per epoch of each. Results go to
``benchmarks/results/pretrained_<task>.json`` and ``.md``.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmkeras  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.presets import register_benchmark_presets  # noqa: E402

register_benchmark_presets()


def _lite0_image(size, channels=3):
    return {"preprocessing": {"height": size, "width": size, "channels": channels, "resize": "plain",
                              "normalize": "efficientnet_lite"},
            "tower": {**mmkeras.get_preset("image_efficientnet_lite0")["modalities"]["image"]["tower"]}}


def _fit(name, preset, train, val, test, epochs, patience, args, **overrides):
    """Trains one model (early stopping on ``val`` when given), returns its result row."""
    import keras

    keras.utils.set_random_seed(args.seed)
    model = mmkeras.build_model(preset, num_classes=10, seed=args.seed, **overrides)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience,
                                               restore_best_weights=True)] if val else []
    times = []
    timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: times.append(time.perf_counter()),
                                           on_epoch_end=lambda e, logs: times.append(time.perf_counter()))
    with common.Timer() as t:
        history = model.fit(*train, validation_data=val, epochs=epochs, callbacks=callbacks + [timer], verbose=2)
    epoch_seconds = [b - a for a, b in zip(times[::2], times[1::2])]
    with common.Timer() as te:
        test_acc = float(model.evaluate(*test, verbose=0, return_dict=True)["accuracy"])
    row = {"run": name, "preset": preset if isinstance(preset, str) else preset.get("name", "custom"),
           "image_preprocessing": model.mm_config["modalities"]["image"]["preprocessing"],
           "image_tower": model.mm_config["modalities"]["image"]["tower"]["type"],
           "params": int(model.count_params()), "epochs_run": len(history.history["loss"]),
           "train_seconds": round(t.seconds, 1),
           # The first epoch also preprocesses (cache) and traces; the median is the steady cost.
           "seconds_per_epoch_median": round(float(np.median(epoch_seconds[1:] or epoch_seconds)), 1),
           "test_seconds": round(te.seconds, 1), "test_accuracy": test_acc}
    if val:
        row["best_epoch"] = int(np.argmax(history.history["val_accuracy"])) + 1
        row["val_accuracy_best"] = float(max(history.history["val_accuracy"]))
    print(row, flush=True)
    return row


def fashion(args):
    x, y = mmkeras.datasets.fashion_mnist("train", data_dir=args.fashion_dir, per_class=2 * args.per_class)
    first = np.concatenate([np.flatnonzero(y == c)[:args.per_class] for c in range(10)])
    rest = np.setdiff1d(np.arange(len(y)), first)
    train = ({"image": x["image"][np.sort(first)]}, y[np.sort(first)])
    val = ({"image": x["image"][rest]}, y[rest])
    test = mmkeras.datasets.fashion_mnist("test", data_dir=args.fashion_dir, limit=args.test_limit or None)
    runs = {}
    augment = {"modalities": {"image": {"augment": {"flip": "horizontal", "translate": 0.1}}}} if args.augment else {}
    if "scratch" in args.runs:
        # No early stop: its BatchNorm statistics need hundreds of steps before validation means anything.
        runs["scratch_image_small"] = _fit("scratch_image_small", "image_small", train, val, test,
                                           args.scratch_epochs, args.scratch_epochs, args, **augment)
    if "pretrained" in args.runs:
        runs["pretrained_efficientnet_lite0"] = _fit(
            "pretrained_efficientnet_lite0", "image_efficientnet_lite0", train, val, test, args.epochs,
            args.patience, args, modalities={"image": {"preprocessing": {"height": args.size, "width": args.size},
                                                   **augment.get("modalities", {}).get("image", {})}})
    return {"train_examples": len(train[1]), "val_examples": len(val[1]), "test_examples": len(test[1]),
            "runs": runs}


def av_digits(args):
    data = {}
    for split in ("train", "test"):
        x, y = mmkeras.datasets.av_digits(split, "clean", "small", data_dir=args.data_dir)
        if args.limit:
            x, y = {k: v[:args.limit] for k, v in x.items()}, y[:args.limit]
        data[split] = (x, y)
    image_only = {k: v for k, v in data["train"][0].items() if k == "image"}, data["train"][1]
    image_test = {k: v for k, v in data["test"][0].items() if k == "image"}, data["test"][1]
    runs = {}
    for name, preset, train, test in (("image_only_scratch", "av_image_small", image_only, image_test),
                                      ("image_only_pretrained", "av_image_small", image_only, image_test),
                                      ("fusion_concat_scratch", "av_concat_small", data["train"], data["test"]),
                                      ("fusion_concat_pretrained", "av_concat_small", data["train"], data["test"])):
        if name.rsplit("_", 1)[1] not in args.runs or not name.startswith(tuple(args.models)):
            continue
        preset = mmkeras.get_preset(preset)
        if name.endswith("pretrained"):  # the same preset with the pretrained tower (and its input) swapped in
            preset["modalities"]["image"].update(_lite0_image(args.size))
            preset["training"].update({"learning_rate_multipliers": {"image": 0.1}, "warmup_steps": 100})
        runs[name] = _fit(name, preset, train, None, test, args.epochs, 0, args)
    return {"train_examples": len(data["train"][1]), "test_examples": len(data["test"][1]), "runs": runs}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["fashion", "av_digits"])
    parser.add_argument("--runs", nargs="+", default=["scratch", "pretrained"], choices=["scratch", "pretrained"])
    parser.add_argument("--size", type=int, default=0, help="pretrained tower's image size (fashion 96, av 64)")
    parser.add_argument("--epochs", type=int, default=0, help="epochs (fashion pretrained 8, av_digits 3)")
    parser.add_argument("--scratch-epochs", type=int, default=40, help="fashion: epochs of the from-scratch CNN")
    parser.add_argument("--patience", type=int, default=3,
                        help="fashion: early-stopping patience of the pretrained run (the CNN runs every epoch)")
    parser.add_argument("--per-class", type=int, default=100, help="fashion: training images per class")
    parser.add_argument("--augment", action="store_true",
                        help="fashion: horizontal flips and 10%% shifts for both models (training only)")
    parser.add_argument("--test-limit", type=int, default=0, help="fashion: only the first N test images")
    parser.add_argument("--models", nargs="+", default=["image_only", "fusion_concat"],
                        choices=["image_only", "fusion_concat"], help="av_digits: which models to train")
    parser.add_argument("--limit", type=int, default=0, help="av_digits: only the first N examples of each split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=common.default_data_dir())
    parser.add_argument("--fashion-dir", default=None, help="Fashion-MNIST folder (default: see the loader)")
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    args.size = args.size or (96 if args.task == "fashion" else 64)
    args.epochs = args.epochs or (8 if args.task == "fashion" else 3)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    machine = common.machine()
    result = {"benchmark": f"pretrained_{args.task}", "started": started,
              "command": f"python benchmarks/pretrained_images.py {' '.join(argv or sys.argv[1:])}",
              "machine": machine, "size": args.size, **(fashion(args) if args.task == "fashion" else av_digits(args))}
    result["machine"]["load_avg_at_end"] = list(os.getloadavg())
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    out = Path(args.out or common.REPO / "benchmarks" / "results" / f"pretrained_{args.task}")
    common.write_json(out.with_suffix(".json"), result)
    lines = [f"# Pretrained image tower: {args.task}", "",
             f"Command: `{result['command']}`. Machine: {machine['cpu']}, {machine['cores']} cores, load average "
             f"at start {machine['load_avg_at_start'][0]:.1f}, at end {result['machine']['load_avg_at_end'][0]:.1f} "
             f"(other engineers' jobs shared the cores). Train {result['train_examples']:,} / test "
             f"{result['test_examples']:,} examples.", "",
             "| run | image tower | image input | params | epochs run (best) | s/epoch (median) | test accuracy |",
             "|---|---|---|---|---|---|---|"]
    for r in result["runs"].values():
        pre = r["image_preprocessing"]
        lines.append(f"| {r['run']} | `{r['image_tower']}` | {pre['height']}x{pre['width']}x{pre['channels']} "
                     f"{pre['normalize']} | {r['params']:,} | {r['epochs_run']} ({r.get('best_epoch', '-')}) | "
                     f"{r['seconds_per_epoch_median']} | {100 * r['test_accuracy']:.2f}% |")
    common.write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
