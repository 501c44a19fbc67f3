"""``mmkeras tune``: the command line's arguments -> :func:`mmkeras.tuning.tune`."""

import json
import os

from mmkeras.presets.custom import load_preset
from mmkeras.tuning.tuner import tune


def parse_space(text):
    """The ``--space`` JSON (a dict), or None."""
    if text is None:
        return None
    try:
        space = json.loads(text)
    except ValueError as err:
        raise ValueError(f"--space is not valid JSON ({err}); expected e.g. '{{\"fusion\": \"fusion/gated\"}}'") \
            from None
    if not isinstance(space, dict):
        raise ValueError(f"--space must be a JSON object of dimension -> value or list, got {text!r}")
    return space


def run(args, classes, say):
    """Runs ``mmkeras tune`` for parsed ``args``; ``classes`` is ``(num_classes, class_names or None)``."""
    num_classes, class_names = classes
    preset = load_preset(args.preset)
    if args.test is not None and not os.path.isfile(args.test):
        raise FileNotFoundError(f"--test manifest {args.test!r} does not exist; expected a .csv, .tsv or .jsonl "
                                f"manifest file")
    result = tune(args.manifest, args.val, preset, args.out, class_names=class_names,
                  num_classes=None if class_names else num_classes, budget_minutes=args.budget_minutes,
                  algorithm=args.algorithm, max_epochs=args.max_epochs, patience=args.patience,
                  max_trials=args.max_trials, space=parse_space(args.space), test_data=args.test,
                  baselines=not args.no_baselines, seed=args.seed, batch_size=args.batch_size,
                  export=not args.no_export, allow_outside=args.allow_outside, verbose=args.progress, log=say)
    if result is None:
        say("worker done: the chief selects, compares and exports")
        return
    summary = result.summary
    say(f"best configuration: {json.dumps(result.hyperparameters)}")
    say(f"model saved: {summary['model']} (the best trial's best epoch); report: {os.path.join(args.out, 'report')}")
    if summary["export"]:
        say(f"SavedModel for TF Serving: {summary['export']}")
    say(f"trials: {os.path.join(args.out, 'trials.csv')}; TensorBoard (HParams): tensorboard --logdir "
        f"{os.path.join(args.out, 'logs')}")
    say(f"wall time {summary['wall_seconds']:.0f} s, model.fit {summary['fit_seconds']:.0f} s")
