"""The ``mmkeras`` command line (also ``python -m mmkeras``).

Subcommands::

    mmkeras presets                                   list the presets
    mmkeras train MANIFEST --preset P --epochs N --out DIR [--val MANIFEST]
    mmkeras evaluate MODEL MANIFEST [--out DIR]       the classification report
    mmkeras predict MODEL FILES... [--text T]         classify files (and texts)
    mmkeras export MODEL BASE_DIR [--version N]       a SavedModel version for TF Serving
    mmkeras tune MANIFEST --val VAL --out DIR         model selection + single-modality baselines
    mmkeras inspect PATH                              a .keras model, a train --out DIR or an export

``train`` backs up every epoch in ``DIR/backup`` and resumes there when run
again on an unfinished ``DIR``; at the end it restores the best epoch (by the
validation metric) and writes it to ``DIR/model.keras`` (atomically), with
TensorBoard logs in ``DIR/logs``, the report in ``DIR/report/``, a SavedModel
version in ``DIR/saved_model/`` and ``DIR/run.json`` (epochs, best epoch,
``"finished": true``). MODEL is a ``.keras`` file or a ``train --out``
directory. An expected failure (a bad manifest row, a file that is not an
image, a bad model file, a full disk, a permission) exits with status 1 and
one line on stderr that says what failed; ``--debug`` shows the traceback.

This module imports neither Keras nor TensorFlow until a command needs them:
``mmkeras --help`` answers at once, and TensorFlow's start-up lines are hidden
unless ``--verbose``.
"""

import argparse
import errno
import json
import math
import os
import sys
import warnings


class _HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default, unless it has none (None / False / []) or the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        no_default = action.default is None or action.default is False or action.default == [] or (
            action.default == argparse.SUPPRESS)
        if no_default or "default" in text or not action.option_strings:
            return action.help
        return f"{text} (default: %(default)s)".strip()


def _common_options():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    common.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up and C++ log lines")
    common.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import this Python module first (repeatable): it registers your own modalities, "
                        "towers or fusion blocks, so models using them load")
    return common


def _parser():
    parser = argparse.ArgumentParser(prog="mmkeras", formatter_class=_HelpFormatter,
                                     description="Multimodal (image + audio + text) models on Keras: "
                                     "train from a manifest, evaluate, predict, export for TF Serving.")
    parser.add_argument("--version", action="version", version=f"mmkeras {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()

    def command(name, **kwargs):
        return sub.add_parser(name, parents=[common], formatter_class=_HelpFormatter, **kwargs)

    def manifest_options(p):
        p.add_argument("--allow-outside", action="store_true", help="accept manifest file paths that are absolute "
                       "or lead outside the manifest's directory (`../`)")
        p.add_argument("--labels-as-indices", action="store_true", help="accept integer labels for a model whose "
                       "classes are names: label i is the i-th class name")

    p = command("presets", help="list the presets (name, modalities, description)")
    p.add_argument("--json", action="store_true", help="print JSON (name -> preset dict)")

    p = command("train", help="train a preset on a manifest; write the model, logs, report and an export",
                description="Train a preset on a CSV/TSV/JSONL manifest (columns image/audio: file paths, "
                "text: the text, label: class name or index). Every epoch is backed up: run the same command "
                "again to resume a killed run. The best epoch (by the validation metric) is restored before the "
                "report and the export.")
    p.add_argument("manifest", help="training manifest (.csv, .tsv or .jsonl)")
    p.add_argument("--preset", required=True, help="preset name (see `mmkeras presets`) or a preset .json file")
    p.add_argument("--epochs", type=int, default=10, help="epochs to train")
    p.add_argument("--baselines", action="store_true", help="also train each modality alone (same epochs and "
                   "settings, in OUT/baselines/) and open the report with a paired verdict: does fusion beat "
                   "the best single modality? (OUT/verdict.json)")
    p.add_argument("--out", required=True, help="output directory (an unfinished run there is resumed)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run (or any run) in --out")
    p.add_argument("--val", help="validation manifest (picks the best epoch; the report is computed on it; "
                   "else on the training data)")
    p.add_argument("--batch-size", type=int, help="default: the preset's")
    p.add_argument("--learning-rate", type=float, help="default: the preset's")
    p.add_argument("--modality-dropout", type=float, metavar="P", help="drop each modality of a training example "
                   "with probability P (default: the preset's)")
    p.add_argument("--augment", action="store_true", help="augment training examples (image shifts and "
                   "rotations, SpecAugment, word dropout) for modalities the preset does not augment")
    p.add_argument("--class-names", help="comma-separated class names, or a file with one per line; a label that "
                   "is not one of them is an error (default: the label values: sorted names, or 0..max for "
                   "integers)")
    p.add_argument("--seed", type=int, default=0, help="random seed (initial weights, shuffling)")
    p.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
    p.add_argument("--progress", type=int, choices=(0, 1, 2), help="Keras progress output: 0 none, 1 bar, "
                   "2 a line per epoch (default: 1 on a terminal, else 2)")
    manifest_options(p)

    p = command("tune", help="search a preset's hyperparameters with KerasTuner, beside each modality alone; "
                "say whether fusion is worth it",
                description="Search fusion block, tower sizes, learning rate, weight decay, dropout, modality "
                "dropout and augmentation strength from a preset (docs/tune.md), and the same for each modality "
                "alone, sharing --budget-minutes equally. Writes DIR/trials.csv, TensorBoard HParams logs "
                "(DIR/logs), DIR/verdict.json (a paired test on the validation predictions), and the best fused "
                "model like `mmkeras train` (model.keras, report/, saved_model/). Run it again to resume. "
                "Distributed: KERASTUNER_TUNER_ID / KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT.")
    p.add_argument("manifest", help="training manifest (.csv, .tsv or .jsonl)")
    p.add_argument("--val", required=True, help="validation manifest (picks epochs, trials and the verdict)")
    p.add_argument("--out", required=True, help="tune directory (an unfinished search there is resumed)")
    p.add_argument("--preset", default="image_audio_small", help="starting preset: a name (`mmkeras presets`) or a "
                   "preset .json file")
    p.add_argument("--budget-minutes", type=float, default=30.0, help="wall-clock budget of all searches")
    p.add_argument("--algorithm", choices=("hyperband", "bayesian"), default="hyperband", help="search algorithm")
    p.add_argument("--max-epochs", type=int, default=10, help="epochs of the longest trial")
    p.add_argument("--patience", type=int, default=3, help="early stopping: epochs without improvement")
    p.add_argument("--max-trials", type=int, help="trials per search, on top of the budget")
    p.add_argument("--space", help='JSON narrowing the search space, e.g. \'{"fusion": "fusion/gated", '
                   '"learning_rate": [0.001, 0.003]}\'')
    p.add_argument("--test", help="held-out test manifest, evaluated once after selection")
    p.add_argument("--no-baselines", action="store_true", help="skip the single-modality searches (no verdict)")
    p.add_argument("--batch-size", type=int, help="default: the preset's")
    p.add_argument("--class-names", help="comma-separated class names, or a file with one per line")
    p.add_argument("--seed", type=int, default=0, help="random seed (KerasTuner, weights, shuffling)")
    p.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
    p.add_argument("--progress", type=int, choices=(0, 1, 2), default=0, help="Keras progress output per trial")
    manifest_options(p)

    p = command("evaluate", help="print (and save) the classification report on a labelled manifest")
    p.add_argument("model", help=".keras file or a `train --out` directory")
    p.add_argument("manifest")
    p.add_argument("--out", help="also write report.txt/.json/confusion_matrix.png here")
    p.add_argument("--batch-size", type=int, default=64, help="examples per batch")
    manifest_options(p)

    p = command("predict", help="classify files: images (PNG/JPEG/BMP/GIF), WAV audio, .txt text",
                description="Files are matched to modalities by their leading bytes (.txt files are text). "
                "They are grouped into examples in order: a file of a modality the current example "
                "already has starts a new example (so `a.png a.wav b.png b.wav` is two examples and "
                "`*.png` one example per image). The i-th --text joins the i-th example.")
    p.add_argument("model", help=".keras file or a `train --out` directory")
    p.add_argument("files", nargs="*", help="input files")
    p.add_argument("--text", action="append", default=[], help="a text input (repeatable)")
    p.add_argument("--top", type=int, default=3, help="classes shown per example")
    p.add_argument("--json", action="store_true", help="print one JSON object per example")

    p = command("export", help="export a SavedModel version for TF Serving")
    p.add_argument("model", help=".keras file or a `train --out` directory")
    p.add_argument("base_dir", help="the model's base path; the version goes in base_dir/<version>")
    p.add_argument("--version", type=int, dest="export_version", help="default: the next free version")
    p.add_argument("--overwrite", action="store_true")

    p = command("inspect", help="describe a .keras model, a `train --out` directory or a SavedModel export")
    p.add_argument("path")
    from mmkeras.weights.cli import add_weights_commands

    add_weights_commands(sub)  # mmkeras weights list | install NAME | path NAME
    return parser


def _version():
    from mmkeras import __version__

    return __version__


def _say(*parts):
    print(*parts, flush=True)


def _warn(message):
    print(f"mmkeras: warning: {message}", file=sys.stderr, flush=True)


# ---- TensorFlow start-up ---------------------------------------------------------------------


def _quiet_tensorflow():
    """Imports TensorFlow without its start-up lines (oneDNN, CUDA drivers, cuInit) on stderr.

    Some are printed by C++ before its logging is set up, so ``TF_CPP_MIN_LOG_LEVEL``
    alone does not hide them: stderr (file descriptor 2) goes to a temporary file
    during the import and is shown only if the import fails.
    """
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also the error-level cuInit line at the first op
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel("ERROR")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


# ---- helpers --------------------------------------------------------------------------


def _load_model(path):
    import keras

    import mmkeras.models  # noqa: F401  (registers the model classes for loading)

    file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"model {path!r}: expected a .keras file or a `mmkeras train --out` directory "
                         f"holding model.keras")
    import zipfile

    if file.endswith(".keras") and not zipfile.is_zipfile(file):
        raise ValueError(f"model {file!r} is not a .keras file (not a zip archive: truncated or another format); "
                         f"expected a model written by `mmkeras train` or model.save")
    try:
        return keras.saving.load_model(file)
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EACCES, errno.EPERM):
            raise
        hint = "; a model on your own modalities or parts needs --plugin MODULE (the module registering them)" \
            if "Unknown" in str(err) else ""
        raise ValueError(f"model {file!r} could not be loaded ({_first_line(err)}); expected a .keras file "
                         f"written by mmkeras (`mmkeras train` or model.save){hint}") from err


def _class_names(arg):
    if os.path.isfile(arg):
        with open(arg, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    return [c.strip() for c in arg.split(",") if c.strip()]


def _manifest_labels(path):
    """``(label values, where)`` of a manifest; every row needs a label."""
    from mmkeras.data.manifest import _read_rows

    rows, lines = _read_rows(path)

    def where(i):
        return f"manifest {path!r} line {lines[i]}"

    for i, row in enumerate(rows):
        if row.get("label") in (None, ""):
            raise ValueError(f"{where(i)} has no label (columns: {sorted(row)}); every row needs one to train on")
    return [row["label"] for row in rows], where


def _label_classes(labels):
    """``(num_classes, class_names or None)`` from the label values of the manifests."""
    from mmkeras.data import labels as label_codes

    values = [v for values, _ in labels for v in values]
    indices = [label_codes.label_index(v, None) for v in values]
    if all(i is not None for i in indices):
        return max(indices) + 1, None
    names = sorted({str(v) for v in values})
    return len(names), names


def _check_labels(labels, class_names, indices_ok):
    """Refuses labels that are not the given class names (or integers read as indices without consent)."""
    from mmkeras.data import labels as label_codes

    for values, where in labels:
        if not indices_ok:
            problem = label_codes.integer_label_problem(values, class_names, where)
            if problem:
                raise ValueError(f"{problem}. Label the rows with class names, or pass --labels-as-indices")
        label_codes.encode(values, class_names, len(class_names), where)  # ValueError naming the line


def _manifest_data(model, path, args, batch_size, training=False):
    """A manifest as a labelled dataset for ``model`` (paths outside its folder only with --allow-outside)."""
    import mmkeras

    options = {"allow_outside": True} if args.allow_outside else {}
    return mmkeras.data.from_manifest(path, model=model, batch_size=batch_size, shuffle=training,
                                      seed=getattr(args, "seed", None), adapt=training, **options)


def _report_and_save(model, manifest, out, args, batch_size=None, baselines=None):
    import mmkeras

    if baselines:  # the manifest itself: each single-modality baseline reads its own column from it
        report = mmkeras.evaluation.report(model, manifest, batch_size=batch_size or 64,
                                           allow_outside=args.allow_outside, baselines=baselines)
    else:
        report = mmkeras.evaluation.report(model, _manifest_data(model, manifest, args, batch_size or 64))
    _say(report.to_text())
    if out:
        written = report.save(out)
        _say(f"report written: {', '.join(written.values())}")
    return report


def _first_line(err):
    text = str(getattr(err, "message", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _expected_failure(err):
    """One line for a failure a user can fix (bad input, disk, permission), or None (a bug: traceback)."""
    if isinstance(err, (ValueError, FileExistsError, FileNotFoundError)):
        return str(err)
    name = type(err).__name__
    tf_error = type(err).__module__.startswith("tensorflow")
    text = _first_line(err)
    if (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or (
            tf_error and "No space left on device" in str(err)):
        where = f" writing {err.filename!r}" if getattr(err, "filename", None) else ""
        return f"the disk is full{where} ({text}); free some space or choose another output directory"
    if isinstance(err, PermissionError) or (tf_error and name == "PermissionDeniedError"):
        where = f" {err.filename!r}" if getattr(err, "filename", None) else ""
        return f"permission denied{where} ({text}); choose a path you can write, or fix its permissions"
    if isinstance(err, OSError):
        return f"{text}; check the path and the device"
    if tf_error and name in ("ResourceExhaustedError", "NotFoundError", "DataLossError", "FailedPreconditionError",
                             "InvalidArgumentError", "UnknownError"):
        return f"TensorFlow: {text} (--debug shows the traceback)"
    return None


def _training_overrides(args, preset):
    """Preset overrides from the train flags (batch size, learning rate, modality dropout, augmentation)."""
    from mmkeras.presets.presets import DEFAULT_AUGMENT

    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("learning_rate", args.learning_rate))
                 if v is not None}
    if args.modality_dropout is not None:
        if not 0.0 <= args.modality_dropout < 1.0:
            raise ValueError(f"--modality-dropout must be in [0, 1), got {args.modality_dropout}")
        overrides["modality_dropout"] = args.modality_dropout
    if args.augment:
        overrides["modalities"] = {m: {"augment": dict(DEFAULT_AUGMENT[m])} for m, spec in preset["modalities"].items()
                                   if not spec.get("augment") and m in DEFAULT_AUGMENT}
    return overrides


def _classes(args):
    """``(labels, num_classes, class_names or None)`` of the --val and training manifests (and --class-names)."""
    from mmkeras.data import labels as label_codes

    labels = [_manifest_labels(args.manifest)] + ([_manifest_labels(args.val)] if args.val else [])
    if args.class_names:
        class_names = _class_names(args.class_names)
        _check_labels(labels, class_names, args.labels_as_indices)
        num_classes = len(class_names)
    else:
        num_classes, class_names = _label_classes(labels)
    if num_classes < 2:
        raise ValueError(f"the labels of {args.manifest!r} hold a single class; a classifier needs at least 2")
    for warning in label_codes.label_warnings(labels[0], [("validation", *labels[1])] if args.val else []):
        _warn(warning)
    return labels, num_classes, class_names


def _warn_about_warmup(model, rows, epochs):
    training = model.mm_config["training"]
    warmup = training.get("warmup_steps") or 0
    steps = epochs * math.ceil(rows / training["batch_size"])
    if warmup > steps:
        _warn(f"the learning-rate warm-up ({warmup} steps) is longer than the run ({epochs} epochs x "
              f"{math.ceil(rows / training['batch_size'])} steps = {steps}): the learning rate never reaches "
              f"{training['learning_rate']:g}; train longer or use a preset without warm-up")


# ---- subcommands -------------------------------------------------------------------------


def cmd_presets(args):
    import mmkeras
    from mmkeras.modalities import modality_order

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
    import mmkeras
    from mmkeras.presets.custom import load_preset, single_modality_preset

    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    preset = load_preset(args.preset)
    labels, num_classes, class_names = _classes(args)
    model, run, best, monitor = _fit_run(preset, args, args.out, labels, num_classes, class_names)
    baselines = {}
    if args.baselines and len(model.modalities) > 1:
        for m in model.modalities:  # each alone: same epochs, seed and settings; its own resumable run folder
            _say(f"baseline: {m} alone")
            baselines[m] = _fit_run(single_modality_preset(preset, m), args, os.path.join(args.out, "baselines", m),
                                    labels, num_classes, class_names, baseline=True)[0]
    elif args.baselines:
        from mmkeras.evaluation.verdict import not_applicable

        _say(not_applicable(model.modalities[0]))
    report_on = args.val or args.manifest
    _say(f"report on {'the validation' if args.val else 'the training'} manifest {report_on}:")
    report = _report_and_save(model, report_on, run.file("report"), args, args.batch_size, baselines=baselines)
    if report.verdict is not None:
        report.verdict.save(run.file("verdict.json"))
        _say(f"verdict written: {run.file('verdict.json')}")
    export = None
    if not args.no_export:
        export = mmkeras.export_saved_model(model, run.file("saved_model"))
        _say(f"SavedModel for TF Serving: {export}")
    run.finish(best_epoch=best[0] if best else None, monitor=monitor, best_value=best[1] if best else None,
               report_accuracy=float(report.accuracy), export=export)


def _fit_run(preset, args, out, labels, num_classes, class_names, baseline=False):
    """Builds ``preset``, trains it in the resumable run folder ``out`` and restores its best epoch.

    Returns ``(model, run, best, monitor)``; ``best`` is ``(epoch, value)`` or None. A
    baseline's run is finished here (it has no report or export of its own).
    """
    import keras

    import mmkeras
    from mmkeras.callbacks import atomic_save
    from mmkeras.distribute import BackupAndRestore
    from mmkeras.training.run_directory import BACKUP, RunDirectory

    keras.utils.set_random_seed(args.seed)
    model = mmkeras.build_model(preset, num_classes=None if class_names else num_classes, class_names=class_names,
                                seed=args.seed, **_training_overrides(args, preset))
    names = model.class_names
    if not baseline:
        _say(f"preset {preset.get('name', args.preset)} ({'+'.join(model.modalities)}), {num_classes} classes "
             f"({', '.join(names[:10])}{', ...' if num_classes > 10 else ''}), {model.count_params():,} parameters")
        _warn_about_warmup(model, len(labels[0][0]), args.epochs)

    run = RunDirectory(out, {"preset": preset.get("name", args.preset), "class_names": names,
                             "modalities": model.modalities, "config": json.loads(json.dumps(model.mm_config))})
    monitor = "val_accuracy" if args.val else "accuracy"
    if baseline and not args.overwrite and run.state and run.finished() and run.state["identity"] == run.identity:
        _say(f"{'+'.join(model.modalities)} baseline already trained: {run.file('model.keras')}")
        return keras.saving.load_model(run.file("model.keras")), run, None, monitor
    done = run.prepare(args.overwrite)
    if done:
        _say(f"resuming the unfinished run in {out} after epoch {done} (--overwrite starts over)")
    best_path, logs = run.file("best.keras"), run.file("logs")
    checkpoint_and_logs = mmkeras.callbacks.default(logs, checkpoint_path=best_path, monitor=monitor)
    checkpoint = next(c for c in checkpoint_and_logs if hasattr(c, "save_best_only"))
    callbacks = checkpoint_and_logs + run.callbacks(checkpoint, BackupAndRestore(run.file(BACKUP)))
    batch_size = model.mm_config["training"]["batch_size"]
    train_data = _manifest_data(model, args.manifest, args, batch_size, training=True)
    val_data = _manifest_data(model, args.val, args, batch_size) if args.val else None
    progress = args.progress if args.progress is not None else (1 if sys.stdout.isatty() else 2)
    model.fit(train_data, validation_data=val_data, epochs=args.epochs, verbose=progress, callbacks=callbacks)

    best = run.best_epoch(monitor)
    if best is not None and os.path.exists(best_path):
        model = keras.saving.load_model(best_path)
        last = run.state["history"][-1]
        _say(f"best epoch: {best[0]} of {last['epoch']} ({monitor} {best[1]:.2%}; the last epoch had "
             f"{last.get(monitor, float('nan')):.2%}): restored from {best_path} for the report and the export")
    model_path = run.file("model.keras")
    atomic_save(model, model_path)
    _say(f"model saved: {model_path} (the best epoch)")
    if baseline:
        run.finish(best_epoch=best[0] if best else None, monitor=monitor, best_value=best[1] if best else None)
    else:
        _say(f"TensorBoard logs: tensorboard --logdir {logs}")
    return model, run, best, monitor


def cmd_tune(args):
    from mmkeras.tuning.command import run

    run(args, _classes(args)[1:], _say)


def cmd_evaluate(args):
    model = _load_model(args.model)
    if not args.labels_as_indices and model.heads[0]["type"] == "classification":
        from mmkeras.data import labels as label_codes

        values, where = _manifest_labels(args.manifest)
        problem = label_codes.integer_label_problem(values, model.class_names, where)
        if problem:
            raise ValueError(f"{problem}. Label the rows with the model's class names, or pass --labels-as-indices")
    _report_and_save(model, args.manifest, args.out, args, args.batch_size)


def _examples(files, texts, modalities, limits=None):
    """Groups files (and texts) into raw examples; returns ``(examples, sources)``.

    ``limits``: the model's ``preprocessor.limits()`` (default limits where None); each
    file is ``stat``-ed and refused by kind or size before it is read.
    """
    from mmkeras.data.files import read_input_file
    from mmkeras.modalities import modality, modality_limits, modality_order, text_modality

    limits = limits or {}
    max_bytes = {m: modality(m).max_file_bytes(limits.get(m) or modality_limits(m)) for m in modality_order()}
    text_name = text_modality(modalities)
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
        if text_name is None:
            raise ValueError(f"--text given, but the model takes {list(modalities)}")
        if i >= len(examples):
            examples.append({})
            sources.append([])
        examples[i][text_name] = text
        sources[i].append(repr(text))
    if not examples:
        raise ValueError("predict needs at least one input file or --text")
    return examples, sources


def _name_example_sources(message, sources):
    """Replaces ``example N`` in a raw-input error by the inputs example N came from."""
    import re

    def named(match):
        index = int(match.group(1))
        return " + ".join(sources[index]) if index < len(sources) else match.group(0)

    return re.sub(r"example (\d+)", named, message)


def cmd_predict(args):
    import numpy as np

    model = _load_model(args.model)
    limits = model.preprocessor.limits() if getattr(model, "preprocessor", None) is not None else None
    examples, sources = _examples(args.files, args.text, model.modalities, limits=limits)
    from mmkeras.modalities import modality

    x = {m: [e.get(m, modality(m).empty_value) for e in examples] for m in model.modalities}
    try:
        scores = model.predict(x, verbose=0)
    except ValueError as err:  # "input 'image', example 3: ..." -> the file the user named
        raise ValueError(_name_example_sources(str(err), sources)) from err
    scores = scores[model.heads[0]["name"]] if isinstance(scores, dict) else scores
    names = model.class_names
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
    from mmkeras.modalities import modality

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
    for m in model.modalities if model.preprocessor is not None else ():
        summary = modality(m).state_summary(model.preprocessor.state(m))
        if summary:
            _say(f"  {m} {summary}")
    _say(f"  fusion: {config['fusion']['type']}")
    for head in model.heads:
        names = model.head_class_names(head["name"])
        _say(f"  head {head['name']!r} ({head['type']}, {head['units']} units): "
             f"{', '.join(names[:10])}{', ...' if len(names) > 10 else ''}")


COMMANDS = {"presets": cmd_presets, "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "export": cmd_export, "inspect": cmd_inspect, "tune": cmd_tune}


def _import_plugins(modules):
    """Imports ``--plugin`` modules (user registrations); a module that fails names itself."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ValueError(f"--plugin {name!r} could not be imported ({err}); it must be an importable "
                             f"module (on PYTHONPATH or installed)") from None


def main(argv=None):
    """Entry point of the ``mmkeras`` console script and ``python -m mmkeras``."""
    args = _parser().parse_args(argv)
    if args.command == "weights":
        return args.handler(args)
    if not args.verbose:
        _quiet_tensorflow()
    from mmkeras.data.labels import IntegerLabelWarning

    # The CLI checks integer labels itself (refused unless --labels-as-indices, see _check_labels).
    warnings.filterwarnings("ignore", category=IntegerLabelWarning)
    try:
        _import_plugins(args.plugin)
        COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        again = " (run the same command again to resume after the last finished epoch)" * (args.command == "train") + (
            " (run the same command again to resume the search)" * (args.command == "tune"))
        print(f"mmkeras {args.command}: interrupted{again}", file=sys.stderr, flush=True)
        return 130
    except Exception as err:  # noqa: BLE001  (expected failures get one line, the rest a traceback)
        message = _expected_failure(err)
        if message is None or args.debug:
            raise
        print(f"mmkeras {args.command}: error: {message}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
