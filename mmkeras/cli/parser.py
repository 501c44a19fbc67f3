"""The ``mmkeras`` argument parser: every subcommand and its options (``mmkeras --help``)."""

import argparse

from mmkeras.cli.common import _version


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
