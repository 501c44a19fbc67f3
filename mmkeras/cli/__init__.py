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

import json
import os
import sys
import warnings

from mmkeras.cli.common import (
    _expected_failure,
    _load_model,
    _manifest_labels,
    _quiet_tensorflow,
    _report_and_save,
    _say,
)
from mmkeras.cli.parser import _parser
from mmkeras.cli.train import _warn_about_warmup, cmd_train, cmd_tune  # noqa: F401  (_warn_about_warmup: tests)

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
