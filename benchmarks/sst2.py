"""SST-2 benchmark: the text-only Kim CNN trained from scratch, or a pretrained encoder fine-tuned.

One command (from the repository root)::

    .venv/bin/python benchmarks/sst2.py
    .venv/bin/python benchmarks/sst2.py --preset text_minilm --epochs 1 --sequence-length 32 \
        --eval-sequence-length 64 --out benchmarks/results/sst2_minilm      # 26 min on 2 idle cores: 90.66%

A preset with pretrained towers (``learning_rate_multipliers`` in its ``training``)
keeps its own optimizer: warm-up, then a cosine decay over the run, towers at their
factor of the rate. Others get a cosine AdamW schedule.

Trains ``text_sst2_small`` on the GLUE SST-2 train split (phrases and
sentences), keeps the epoch with the best dev accuracy, and reports test
accuracy on the 1,821 labelled test sentences (Kim 2014: CNN-rand 82.7%,
CNN-non-static 87.2%). Writes ``benchmarks/results/sst2.json`` and ``.md``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmkeras  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.presets import register_benchmark_presets  # noqa: E402

register_benchmark_presets()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="text_sst2_small")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N training examples")
    parser.add_argument("--sequence-length", type=int, default=0, help="text sequence length (0: the preset's)")
    parser.add_argument("--eval-sequence-length", type=int, default=0,
                        help="also evaluate dev and test at this length with the trained weights (0: no); a "
                             "pretrained encoder's position table covers 512 positions, so short training "
                             "sequences (SST-2's training phrases: 13 WordPiece tokens on average) need not "
                             "truncate the longer test sentences (25 on average, 24%% over 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=common.default_data_dir())
    parser.add_argument("--out", default=str(common.REPO / "benchmarks" / "results" / "sst2"))
    args = parser.parse_args(argv)

    import keras

    keras.utils.set_random_seed(args.seed)
    data = {s: mmkeras.datasets.sst2(s, data_dir=args.data_dir) for s in ("train", "dev", "test")}
    x_tr, y_tr = data["train"]
    if args.limit:
        x_tr, y_tr = {"text": x_tr["text"][:args.limit]}, y_tr[:args.limit]
    overrides = {"modalities": {"text": {"preprocessing": {"sequence_length": args.sequence_length}}}} \
        if args.sequence_length else {}
    training = mmkeras.get_preset(args.preset).get("training", {})
    batch = training.get("batch_size", 32)
    steps = args.epochs * int(np.ceil(len(y_tr) / batch))
    if training.get("learning_rate_multipliers"):  # fine-tuning: the preset's warm-up, then cosine decay
        overrides["training"] = {"decay_steps": max(steps - training.get("warmup_steps", 0), 1)}
    model = mmkeras.build_model(args.preset, num_classes=2, seed=args.seed, **overrides)
    if not training.get("learning_rate_multipliers"):
        model.compile(optimizer=common.cosine_adamw(model.mm_config["training"]["learning_rate"], steps))
    # Dev picks the epoch; the test split is only read once, at the end.
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True)
    with common.Timer() as t:
        history = model.fit(x_tr, y_tr, validation_data=data["dev"], epochs=args.epochs, batch_size=batch,
                            callbacks=[stop], verbose=2)
    test_acc = float(model.evaluate(*data["test"], verbose=0, return_dict=True)["accuracy"])
    dev_acc = max(history.history["val_accuracy"])
    longer = evaluate_at_length(args, model, overrides, data) if args.eval_sequence_length else None
    result = {
        "benchmark": "sst2", "command": "python benchmarks/sst2.py " + " ".join(argv or sys.argv[1:]),
        "machine": common.machine(), "preset": args.preset, "params": int(model.count_params()),
        "sequence_length": model.mm_config["modalities"]["text"]["preprocessing"]["sequence_length"],
        "train_examples": len(y_tr), "epochs_run": len(history.history["loss"]),
        "best_epoch": int(np.argmax(history.history["val_accuracy"])) + 1,
        "train_seconds": round(t.seconds, 1), "dev_accuracy": dev_acc, "test_accuracy": test_acc,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if longer:
        result["at_eval_sequence_length"] = longer
    out = Path(args.out)
    common.write_json(out.with_suffix(".json"), result)
    m = result["machine"]
    common.write_text(out.with_suffix(".md"),
        "# SST-2 benchmark results\n\n"
        f"Command: `{result['command']}`. Machine: {m['cpu']}, {m['cores']} cores (load average at start "
        f"{m['load_avg_at_start'][0]:.1f}), TensorFlow {m['tensorflow']}, Keras {m['keras']}.\n\n"
        "| preset | params | sequence length | train examples | epochs (best) | train time (s) | dev accuracy | "
        "test accuracy |\n|---|---|---|---|---|---|---|---|\n"
        f"| `{args.preset}` | {result['params']:,} | {result['sequence_length']} | {len(y_tr):,} | "
        f"{result['epochs_run']} ({result['best_epoch']}) | "
        f"{t.seconds:.0f} | {100 * dev_acc:.2f}% | {100 * test_acc:.2f}% |\n"
        + (f"| same weights, evaluated at sequence length {longer['sequence_length']} | | | | | | "
           f"{100 * longer['dev_accuracy']:.2f}% | {100 * longer['test_accuracy']:.2f}% |\n" if longer else ""))
    print(f"SST-2 test accuracy {test_acc:.4f} (dev {dev_acc:.4f}, {t.seconds:.0f}s)")


def evaluate_at_length(args, model, overrides, data):
    """The trained weights in a model built at ``--eval-sequence-length``: dev and test accuracy.

    Only the preprocessor's padding length differs (the vocabulary lives in the config,
    not the weights), so the two models' weight lists match one to one.
    """
    overrides = {**overrides, "modalities": {"text": {"preprocessing": {
        "sequence_length": args.eval_sequence_length}}}}
    overrides.pop("training", None)
    longer = mmkeras.build_model(args.preset, num_classes=2, seed=args.seed, **overrides)
    longer.set_weights(model.get_weights())
    accuracy = {s: float(longer.evaluate(*data[s], verbose=0, return_dict=True)["accuracy"]) for s in ("dev", "test")}
    return {"sequence_length": args.eval_sequence_length, "dev_accuracy": accuracy["dev"],
            "test_accuracy": accuracy["test"]}


if __name__ == "__main__":
    main()
