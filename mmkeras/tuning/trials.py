"""The record of a search: ``DIR/trials.csv`` and TensorBoard's HParams dashboard.

``trials.csv`` has one row per trial of every search (the fused model's and each
single-modality baseline's): search, trial id, status, score, best epoch and
every hyperparameter. It is rebuilt from KerasTuner's own oracle state after
each trial (written atomically), so a resumed search never repeats or loses a
row. The per-trial TensorBoard runs (``DIR/logs/<search>/<trial>/``) carry
KerasTuner's HParams summaries; :func:`write_hparams_config` adds the
experiment (every dimension and the metric), so the HParams dashboard lists them.
"""

import csv
import io
import os

from mmkeras.utils.atomic import atomic_write_text

TRIALS_FILE = "trials.csv"
_FIXED_COLUMNS = ("search", "trial_id", "status", "score", "best_epoch")


def tidy(values):
    """Hyperparameter values without KerasTuner's bookkeeping (``tuner/...``) and float noise
    (``0.30000000000000004`` -> ``0.3``: step values are sums of steps)."""
    return {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in values.items()
            if not k.startswith("tuner/")}


def trial_rows(search, oracle):
    """One dict per trial of a KerasTuner oracle, in the order the trials started."""
    rows = []
    order = list(getattr(oracle, "start_order", [])) or sorted(oracle.trials)
    for trial_id in order:
        trial = oracle.trials[trial_id]
        values = tidy(trial.hyperparameters.values)
        tuner_values = {k.replace("tuner/", "hyperband_"): v for k, v in trial.hyperparameters.values.items()
                        if k.startswith("tuner/")}
        rows.append({"search": search, "trial_id": trial_id, "status": trial.status,
                     "score": "" if trial.score is None else trial.score,
                     "best_epoch": "" if trial.best_step is None else int(trial.best_step) + 1,
                     **values, **tuner_values})
    return rows


def read_rows(path):
    """The rows of an existing ``trials.csv`` (an empty list when there is none)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def write_trials(path, search, rows):
    """Replaces ``search``'s rows of ``path`` with ``rows``, keeping the other searches' rows."""
    kept = [r for r in read_rows(path) if r.get("search") != search]
    everything = kept + rows
    columns = list(_FIXED_COLUMNS)
    for row in everything:
        columns += [k for k in row if k not in columns]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(everything)
    atomic_write_text(path, text.getvalue())
    return path


def write_hparams_config(log_dir, hyperparameters, objective="val_accuracy"):
    """Writes the HParams experiment (dimensions and metric) into ``log_dir``, for the dashboard.

    Args:
        log_dir: str. The search's TensorBoard directory (trials are its subdirectories).
        hyperparameters: ``keras_tuner.HyperParameters`` of the search.
        objective: str. The metric.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    dimensions = []
    for hp in hyperparameters.space:
        config = hp.get_config()
        if "values" in config and config["values"]:
            domain = hparams_api.Discrete(list(config["values"]))
        elif "min_value" in config:
            domain = hparams_api.RealInterval(float(config["min_value"]), float(config["max_value"]))
        elif "value" in config:
            domain = hparams_api.Discrete([config["value"]])
        else:
            continue
        dimensions.append(hparams_api.HParam(hp.name, domain))
    os.makedirs(log_dir, exist_ok=True)
    with tf.summary.create_file_writer(log_dir).as_default():
        hparams_api.hparams_config(hparams=dimensions, metrics=[
            hparams_api.Metric(f"epoch_{objective.removeprefix('val_')}", group="validation",
                               display_name=objective)])
