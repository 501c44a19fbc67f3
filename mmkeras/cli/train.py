"""``mmkeras train`` (with ``--baselines``) and ``mmkeras tune``: fit presets on manifests in resumable run folders."""

import json
import math
import os
import sys

from mmkeras.cli.common import (
    _check_labels,
    _class_names,
    _label_classes,
    _manifest_data,
    _manifest_labels,
    _report_and_save,
    _say,
    _warn,
)


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
