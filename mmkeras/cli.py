"""The ``mmkeras`` command line (also ``python -m mmkeras``).

Subcommands::

    mmkeras presets                                   list the presets
    mmkeras train MANIFEST --preset P --epochs N --out DIR [--val MANIFEST]
    mmkeras evaluate MODEL MANIFEST [--out DIR]       the classification report
    mmkeras predict MODEL FILES... [--text T]         classify files (and texts)
    mmkeras export MODEL BASE_DIR [--version N]       a SavedModel version for TF Serving
    mmkeras inspect PATH                              a .keras model, a train --out DIR or an export

``train`` writes ``DIR/model.keras`` (atomically), TensorBoard logs in ``DIR/logs``,
the report in ``DIR/report/`` and a SavedModel version in ``DIR/saved_model/``.
MODEL is a ``.keras`` file or a ``train --out`` directory. Errors in the inputs
(a bad manifest row, a file that is not an image) exit with status 1 and one
line on stderr that names the input.
"""

import argparse
import json
import os
import sys

from mmkeras.modalities import modality_order


def _parser():
    parser = argparse.ArgumentParser(prog="mmkeras", description="Multimodal (image + audio + text) models on Keras: "
                                     "train from a manifest, evaluate, predict, export for TF Serving.")
    parser.add_argument("--version", action="version", version=f"mmkeras {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("presets", help="list the presets (name, modalities, description)")
    p.add_argument("--json", action="store_true", help="print JSON (name -> preset dict)")

    p = sub.add_parser("train", help="train a preset on a manifest; write the model, logs, report and an export",
                       description="Train a preset on a CSV/TSV/JSONL manifest (columns image/audio: file paths, "
                       "text: the text, label: class name or index).")
    p.add_argument("manifest", help="training manifest (.csv, .tsv or .jsonl)")
    p.add_argument("--preset", required=True, help="preset name (see `mmkeras presets`)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--val", help="validation manifest (the report is computed on it; else on the training data)")
    p.add_argument("--batch-size", type=int, help="default: the preset's")
    p.add_argument("--learning-rate", type=float, help="default: the preset's")
    p.add_argument("--class-names", help="comma-separated class names, or a file with one per line "
                   "(default: the label values: sorted names, or 0..max for integers)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), help="Keras verbosity (default: 1 on a terminal, else 2)")

    p = sub.add_parser("evaluate", help="print (and save) the classification report on a labelled manifest")
    p.add_argument("model", help=".keras file or a `train --out` directory")
    p.add_argument("manifest")
    p.add_argument("--out", help="also write report.txt/.json/confusion_matrix.png here")
    p.add_argument("--batch-size", type=int, default=64)

    p = sub.add_parser("predict", help="classify files: images (PNG/JPEG/BMP/GIF), WAV audio, .txt text",
                       description="Files are matched to modalities by their leading bytes (.txt files are text). "
                       "They are grouped into examples in order: a file of a modality the current example "
                       "already has starts a new example (so `a.png a.wav b.png b.wav` is two examples and "
                       "`*.png` one example per image). The i-th --text joins the i-th example.")
    p.add_argument("model", help=".keras file or a `train --out` directory")
    p.add_argument("files", nargs="*", help="input files")
    p.add_argument("--text", action="append", default=[], help="a text input (repeatable)")
    p.add_argument("--top", type=int, default=3, help="classes shown per example")
    p.add_argument("--json", action="store_true", help="print one JSON object per example")

    p = sub.add_parser("export", help="export a SavedModel version for TF Serving")
    p.add_argument("model", help=".keras file or a `train --out` directory")
    p.add_argument("base_dir", help="the model's base path; the version goes in base_dir/<version>")
    p.add_argument("--version", type=int, dest="export_version", help="default: the next free version")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("inspect", help="describe a .keras model, a `train --out` directory or a SavedModel export")
    p.add_argument("path")
    from mmkeras.weights.cli import add_weights_commands

    add_weights_commands(sub)  # mmkeras weights list | install NAME | path NAME
    return parser


def _version():
    from mmkeras import __version__

    return __version__


def _say(*parts):
    print(*parts, flush=True)


# ---- helpers --------------------------------------------------------------------------


def _load_model(path):
    import keras

    import mmkeras  # noqa: F401  (registers the model classes for loading)

    file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"model {path!r}: expected a .keras file or a `mmkeras train --out` directory "
                         f"holding model.keras")
    return keras.saving.load_model(file)


def _class_names(arg):
    if os.path.isfile(arg):
        with open(arg, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    return [c.strip() for c in arg.split(",") if c.strip()]


def _label_classes(paths):
    """``(num_classes, class_names or None)`` from the label values of the manifests."""
    from mmkeras.data import labels as label_codes
    from mmkeras.data.manifest import read_manifest

    values = [row.get("label") for path in paths for row in read_manifest(path)]
    if any(v is None for v in values):
        raise ValueError("every manifest row needs a 'label' to train on")
    indices = [label_codes.label_index(v, None) for v in values]
    if all(i is not None for i in indices):
        return max(indices) + 1, None
    names = sorted({str(v) for v in values})
    return len(names), names


def _report_and_save(model, manifest, out, batch_size=None):
    import mmkeras

    data = mmkeras.data.from_manifest(manifest, model=model, batch_size=batch_size or 64)
    report = mmkeras.evaluation.report(model, data)
    _say(report.to_text())
    if out:
        written = report.save(out)
        _say(f"report written: {', '.join(written.values())}")
    return report


# ---- subcommands -------------------------------------------------------------------------


def cmd_presets(args):
    import mmkeras

    if args.json:
        _say(json.dumps({name: mmkeras.get_preset(name) for name in mmkeras.list_presets()}, indent=1))
        return
    rows = [(name, "+".join(m for m in modality_order() if m in mmkeras.get_preset(name)["modalities"]), description)
            for name, description in mmkeras.list_presets().items()]
    width = max(len(r[0]) for r in rows)
    _say(f"{'preset':<{width}}  {'modalities':<16}  description")
    for name, modalities, description in rows:
        _say(f"{name:<{width}}  {modalities:<16}  {description}")


def cmd_train(args):
    import keras

    import mmkeras
    from mmkeras.callbacks import atomic_save

    if args.preset not in mmkeras.list_presets():
        raise ValueError(f"unknown preset {args.preset!r}; see `mmkeras presets`")
    manifests = [args.manifest] + ([args.val] if args.val else [])
    if args.class_names:
        class_names = _class_names(args.class_names)
        num_classes = len(class_names)
    else:
        num_classes, class_names = _label_classes(manifests)
    if num_classes < 2:
        raise ValueError(f"the labels of {manifests} hold a single class; a classifier needs at least 2")
    keras.utils.set_random_seed(args.seed)
    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("learning_rate", args.learning_rate)) if v}
    model = mmkeras.build_model(args.preset, num_classes=None if class_names else num_classes,
                                class_names=class_names, seed=args.seed, **overrides)
    _say(f"preset {args.preset} ({'+'.join(model.modalities)}), {num_classes} classes "
         f"({', '.join(model.class_names()[:10])}{', ...' if num_classes > 10 else ''}), "
         f"{model.count_params():,} parameters")
    os.makedirs(args.out, exist_ok=True)
    logs = os.path.join(args.out, "logs")
    callbacks = mmkeras.callbacks.default(logs, checkpoint_path=os.path.join(args.out, "best.keras"),
                                          monitor="val_accuracy" if args.val else "accuracy")
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    model.fit(args.manifest, validation_data=args.val, epochs=args.epochs, verbose=verbose, callbacks=callbacks)
    model_path = os.path.join(args.out, "model.keras")
    atomic_save(model, model_path)
    _say(f"model saved: {model_path} (best epoch: {os.path.join(args.out, 'best.keras')})")
    _say(f"TensorBoard logs: tensorboard --logdir {logs}")
    report_on = args.val or args.manifest
    _say(f"report on {'the validation' if args.val else 'the training'} manifest {report_on}:")
    _report_and_save(model, report_on, os.path.join(args.out, "report"), args.batch_size)
    if not args.no_export:
        path = mmkeras.export_saved_model(model, os.path.join(args.out, "saved_model"))
        _say(f"SavedModel for TF Serving: {path}")


def cmd_evaluate(args):
    model = _load_model(args.model)
    _report_and_save(model, args.manifest, args.out, args.batch_size)


def _examples(files, texts, modalities, limits=None):
    """Groups files (and texts) into raw examples; returns ``(examples, sources)``.

    ``limits``: the model's ``preprocessor.limits()`` (default limits where None); each
    file is ``stat``-ed and refused by kind or size before it is read.
    """
    from mmkeras.data.files import read_input_file
    from mmkeras.modalities.limits import MAX_TEXT_BYTES, modality_limits

    limits = limits or {}
    max_bytes = {m: (limits.get(m) or modality_limits(m)).get("max_bytes") for m in ("image", "audio")}
    max_bytes["text"] = MAX_TEXT_BYTES
    examples, sources = [], []
    for path in files:
        modality, value = read_input_file(path, max_bytes)
        if modality not in modalities:
            raise ValueError(f"input file {path!r} is {modality}, but the model takes {list(modalities)}")
        if not examples or modality in examples[-1]:
            examples.append({})
            sources.append([])
        examples[-1][modality] = value
        sources[-1].append(path)
    for i, text in enumerate(texts):
        if "text" not in modalities:
            raise ValueError(f"--text given, but the model takes {list(modalities)}")
        if i >= len(examples):
            examples.append({})
            sources.append([])
        examples[i]["text"] = text
        sources[i].append(repr(text))
    if not examples:
        raise ValueError("predict needs at least one input file or --text")
    return examples, sources


def cmd_predict(args):
    import numpy as np

    model = _load_model(args.model)
    examples, sources = _examples(args.files, args.text, model.modalities)
    x = {m: [e.get(m, "" if m == "text" else b"") for e in examples] for m in model.modalities}
    scores = model.predict(x, verbose=0)
    scores = scores[model.heads[0]["name"]] if isinstance(scores, dict) else scores
    names = model.class_names()
    for src, row in zip(sources, np.asarray(scores)):
        top = np.argsort(-row)[:max(1, args.top)]
        if args.json:
            _say(json.dumps({"inputs": src, "class": names[top[0]], "score": float(row[top[0]]),
                             "top": [{"class": names[i], "score": float(row[i])} for i in top]}))
        else:
            _say(f"{' + '.join(src)}: {names[top[0]]} ({row[top[0]]:.3f})"
                 + (f"   next: {', '.join(f'{names[i]} ({row[i]:.3f})' for i in top[1:])}" if len(top) > 1 else ""))


def cmd_export(args):
    import mmkeras

    model = _load_model(args.model)
    path = mmkeras.export_saved_model(model, args.base_dir, version=args.export_version, overwrite=args.overwrite)
    _say(f"SavedModel for TF Serving: {path}")


def cmd_inspect(args):
    import mmkeras

    path = args.path
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "model.keras")):
        mmkeras.inspect_export(path, print_summary=True)
        return
    model = _load_model(path)
    config = model.mm_config
    _say(f"mmkeras model {model.name!r}: {model.count_params():,} parameters, mixed precision "
         f"{config['mixed_precision']}")
    for m in model.modalities:
        spec = config["modalities"][m]
        _say(f"  {m}: tower {spec['tower']['type']}; preprocessing {json.dumps(spec['preprocessing'])}")
    if "text" in model.modalities and model.preprocessor.text_vectorizer is not None:
        _say(f"  text vocabulary: {model.preprocessor.text_vectorizer.vocabulary_size()} tokens")
    _say(f"  fusion: {config['fusion']['type']}")
    for head in model.heads:
        names = model.class_names(head["name"])
        _say(f"  head {head['name']!r} ({head['type']}, {head['units']} units): "
             f"{', '.join(names[:10])}{', ...' if len(names) > 10 else ''}")


COMMANDS = {"presets": cmd_presets, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "export": cmd_export, "inspect": cmd_inspect}


def main(argv=None):
    """Entry point of the ``mmkeras`` console script and ``python -m mmkeras``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    args = _parser().parse_args(argv)
    if args.command == "weights":
        return args.handler(args)
    import mmkeras

    # The command line offers every documented preset, the benchmark ones (AV-digits, SST-2) included.
    mmkeras.presets.register_benchmark_presets()
    try:
        COMMANDS[args.command](args)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"mmkeras {args.command}: error: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
