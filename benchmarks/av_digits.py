"""AV-digits benchmark: single-modality baselines, fusion presets, modality dropout, contrastive.

One command (from the repository root)::

    .venv/bin/python benchmarks/av_digits.py            # small size, clean + noisy

For each variant it trains image-only, audio-only, late-concat, gated and
attention fusion, and gated fusion with modality dropout (all on the same
cached features; on request, ``--runs extra_fusion``, the token-level blocks:
joint transformer, co-attention, MulT, MBT bottlenecks, Perceiver latents, and
LMF), then (clean) the contrastive model. It
writes ``benchmarks/results/av_digits.json`` and ``.md`` after every run, so a
cut-short run still leaves its finished results. ``--limit 256 --epochs 1``
is a one-minute smoke test of the harness.
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
from benchmarks._av_report import write_markdown  # noqa: E402
from benchmarks.presets import register_benchmark_presets  # noqa: E402
from mmkeras.evaluation.features import compute_features, remove_modality  # noqa: E402

register_benchmark_presets()

ALL = ("image", "audio")
CLASSIFIERS = [  # (run name, preset)
    ("image_only", "av_image_small"),
    ("audio_only", "av_audio_small"),
    ("fusion_concat", "av_concat_small"),
    ("fusion_gated", "av_gated_small"),
    ("fusion_attention", "av_attention_small"),
    ("fusion_transformer", "av_transformer_small"),
    ("fusion_coattention", "av_coattention_small"),
    ("fusion_lmf", "av_lmf_small"),
    ("fusion_mult", "av_mult_small"),
    ("fusion_bottleneck", "av_bottleneck_small"),
    ("fusion_perceiver", "av_perceiver_small"),
    ("fusion_gated_modality_dropout", "av_gated_dropout_small"),
]
# The default set: the issue asks for image-only, audio-only, three fusion presets and the
# modality-dropout model per variant; the token-level blocks are extra (``--runs extra_fusion``).
DEFAULT_RUNS = ["image_only", "audio_only", "fusion_concat", "fusion_gated", "fusion_attention",
                "fusion_gated_modality_dropout"]
RUN_GROUPS = {  # names --runs expands
    "extra_fusion": ["fusion_transformer", "fusion_coattention", "fusion_lmf", "fusion_mult", "fusion_bottleneck",
                     "fusion_perceiver"],
}
DROPOUT_RUN = "fusion_gated_modality_dropout"
ROBUSTNESS_RUNS = ("fusion_gated", DROPOUT_RUN)


def select(features, modalities):
    """The shared two-modality features restricted to one model's modalities (a one-modality model's own
    features, from ``model.preprocess``, as they are; a fused model's own features are in ``ALL``'s order)."""
    if features["present"].shape[1] == len(modalities) < len(ALL):
        return {**{m: features[m] for m in modalities}, "present": features["present"]}
    idx = [ALL.index(m) for m in modalities]
    return {**{m: features[m] for m in modalities}, "present": features["present"][:, idx]}


def load_variant(variant, args):
    """Raw data and features (preprocessed once, cached on disk) for one variant."""
    data = {}
    for split in ("train", "test"):
        x, y = mmkeras.datasets.av_digits(split, variant, args.size, data_dir=args.data_dir)
        if args.limit:
            x, y = {k: v[:args.limit] for k, v in x.items()}, y[:args.limit]
        cache = Path(args.cache_dir) / f"av_digits_{variant}_{args.size}_{split}_{args.limit or 'all'}.npz"
        if cache.exists():
            features = dict(np.load(cache))
        else:
            reference = mmkeras.build_model("av_concat_small", num_classes=10, compile=False)
            with common.Timer() as t:
                features = compute_features(reference, x)
            print(f"[{variant}/{split}] preprocessed {len(y)} examples in {t.seconds:.0f}s", flush=True)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, **features)
        data[split] = (x, y, features)
    return data


def train_classifier(preset, data, args, epochs, **overrides):
    """Trains ``preset`` (with ``build_model`` ``overrides``) on ``data``'s features; ``(model, record)``.

    A ``data["train"]`` without features (``(x, y, None)``) trains on its raw ``x``; a ``data["test"]``
    without features is preprocessed by the model, and ``data["test"]`` is given those features.
    """
    x_tr, y_tr, f_tr = data["train"]
    x_te, y_te, f_te = data["test"]
    model = mmkeras.build_model(preset, num_classes=10, seed=args.seed, **overrides)
    batch = args.batch_size or model.mm_config["training"]["batch_size"]
    steps = epochs * int(np.ceil(len(y_tr) / batch))
    model.compile(optimizer=common.cosine_adamw(model.mm_config["training"]["learning_rate"], steps,
                                                 warmup_steps=min(100, steps // 10)))
    # Raw training inputs (x_tr) where no features are given: a training-only raw augmentation needs them.
    feats_tr = {m: x_tr[m] for m in model.modalities} if f_tr is None else select(f_tr, model.modalities)
    if f_te is None:  # raw test pairs: the model's own preprocessing, once (the caller's removal scores reuse it)
        f_te = model.preprocess({m: x_te[m] for m in model.modalities})
        data["test"] = (x_te, y_te, f_te)
    feats_te = select(f_te, model.modalities)
    load = [round(v, 2) for v in os.getloadavg()]  # per run: a resumed table mixes machine states
    with common.Timer() as t:
        history = model.fit(feats_tr, y_tr, epochs=epochs, batch_size=batch, verbose=2)
    return model, {
        "preset": preset, "modalities": list(model.modalities), "params": int(model.count_params()),
        "epochs": epochs, "batch_size": batch, "train_seconds": round(t.seconds, 1),
        "train_accuracy_last_epoch": float(history.history["accuracy"][-1]),
        "test_accuracy": common.accuracy(model, feats_te, y_te), "load_avg_at_start": load,
    }


def removal_accuracies(model, features, labels):
    """``{"test_accuracy_<m>_removed": accuracy}`` for each modality of a fused model, that modality absent
    (zeros and ``present`` 0: the serving contract for an empty input)."""
    features = select(features, model.modalities)
    return {f"test_accuracy_{m}_removed": common.accuracy(model, remove_modality(features, model.modalities, m), labels)
            for m in model.modalities} if len(model.modalities) > 1 else {}


def train_contrastive(data, args, results, variant):
    x_tr, y_tr, f_tr = data["train"]
    x_te, y_te, f_te = data["test"]
    model, history, seconds = common.fit_unlabelled("av_contrastive_small", f_tr, args.contrastive_epochs, args.seed)
    recalls = mmkeras.cross_modal_recall(model, None, y_te, features=f_te)
    return model, {
        "preset": "av_contrastive_small", "params": int(model.count_params()),
        "epochs": args.contrastive_epochs, "train_seconds": round(seconds, 1),
        "loss_first_epoch": float(history.history["loss"][0]), "loss_last_epoch": float(history.history["loss"][-1]),
        "temperature": float(1.0 / np.exp(model.contrastive_head.logit_scale.numpy())),
        "retrieval": recalls,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=["small", "full"])
    parser.add_argument("--variants", nargs="+", default=["clean", "noisy"], choices=["clean", "noisy"])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--contrastive-epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=0,
                        help="classifier batch size (default: the preset's, 64); the contrastive model keeps its own")
    parser.add_argument("--dropout-epochs", type=int, default=12,
                        help="epochs of the modality-dropout model on the clean variant, where its targets are "
                             "measured (each modality trains alone on only part of the batches, so it needs "
                             "more epochs); on the noisy variant it trains --epochs like the others")
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS + ["contrastive"],
                        choices=[name for name, _ in CLASSIFIERS] + ["contrastive"] + list(RUN_GROUPS),
                        help="runs to do, in this order (default: all but the extra_fusion group: "
                             + ", ".join(RUN_GROUPS["extra_fusion"]) + ")")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N examples of each split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=common.default_data_dir())
    parser.add_argument("--cache-dir", default=str(common.REPO / "benchmarks" / ".cache"))
    parser.add_argument("--out", default=str(common.REPO / "benchmarks" / "results" / "av_digits"))
    parser.add_argument("--robustness-examples", type=int, default=2000,
                        help="first N test examples for the robustness table (0: all); removal accuracies of "
                             "the modality-dropout model are always on the full test set")
    parser.add_argument("--redo", action="store_true",
                        help="with --resume: do the runs named by --runs again even if they have results")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in the results file and do only the missing ones")
    args = parser.parse_args(argv)
    args.runs = [name for run in args.runs for name in RUN_GROUPS.get(run, [run])]

    import keras

    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    results = {
        "benchmark": "av_digits", "command": "python benchmarks/av_digits.py " + " ".join(argv or sys.argv[1:]),
        "size": args.size, "limit": args.limit or None, "machine": common.machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "complete": False, "runs": {}, "robustness": {},
        "contrastive": {},
    }

    def save():
        results["elapsed_seconds"] = round(time.perf_counter() - start, 1)
        common.write_json(out.with_suffix(".json"), results)
        write_markdown(results, out.with_suffix(".md"))

    previous_seconds = 0.0
    if args.resume and out.with_suffix(".json").exists():
        import json

        old = json.loads(out.with_suffix(".json").read_text())
        for key in ("runs", "robustness", "contrastive"):
            results[key] = old.get(key, {})
        results["started"] = old.get("started", results["started"])
        results["commands"] = old.get("commands", [old.get("command")]) + [results["command"]]
        results["earlier_machines"] = old.get("earlier_machines", []) + [old["machine"]]
        previous_seconds = old.get("elapsed_seconds", 0.0)
    start = time.perf_counter() - previous_seconds
    robustness_cache = {}
    for variant in args.variants:
        data = load_variant(variant, args)
        results["runs"].setdefault(variant, {})
        presets = dict(CLASSIFIERS)
        for name in [r for r in args.runs if r in presets]:  # in the order asked for
            preset = presets[name]
            if name in results["runs"][variant] and not args.redo:
                continue
            print(f"=== {variant} / {name} ({preset})", flush=True)
            epochs = args.dropout_epochs if (variant, name) == ("clean", DROPOUT_RUN) else args.epochs
            model, record = train_classifier(preset, data, args, epochs)
            results["runs"][variant][name] = record
            print(f"    test accuracy {record['test_accuracy']:.4f}  ({record['train_seconds']}s)", flush=True)
            # Full test set, one modality absent: the serving contract's accuracy (cheap: features).
            record.update(removal_accuracies(model, data["test"][2], data["test"][1]))
            if variant == "clean" and name in ROBUSTNESS_RUNS:
                x_te, y_te, f_te = data["test"]
                n = args.robustness_examples or len(y_te)
                x_te, y_te = {k: v[:n] for k, v in x_te.items()}, y_te[:n]
                f_te = {k: v[:n] for k, v in select(f_te, model.modalities).items()}
                report = mmkeras.evaluate_robustness(
                    model, x_te, y_te, features=f_te, cache=robustness_cache,
                    plot_path=str(out.parent / f"{out.name}_robustness_{name}.png"),
                    log_dir=str(common.REPO / "benchmarks" / ".logs" / f"robustness_{name}"))
                results["robustness"][name] = {**report.to_dict(), "test_examples": n}
                print(report.to_markdown(), flush=True)
            save()
        if variant == "clean" and "contrastive" in args.runs and (args.redo or variant not in results["contrastive"]):
            print(f"=== {variant} / contrastive", flush=True)
            _, record = train_contrastive(data, args, results, variant)
            results["contrastive"][variant] = record
            print(f"    retrieval {record['retrieval']}", flush=True)
            save()
    results["complete"] = all(name in results["runs"].get(v, {}) for v in ("clean", "noisy")
                              for name in DEFAULT_RUNS) and "clean" in results["contrastive"]
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["machine"]["load_avg_at_end"] = list(os.getloadavg())
    save()


if __name__ == "__main__":
    main()
