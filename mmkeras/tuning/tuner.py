"""``mmkeras.tune``: model selection over a preset with single-modality baselines and a verdict.

The steps, all in ``DIR``:

1. preprocess the training and validation data once (the search space never
   changes preprocessing, so every trial and every baseline trains on the same
   in-memory features);
2. search the fused preset (``DIR/fused/``), then each modality alone
   (``DIR/<modality>/``), each with an equal share of the wall-clock budget
   (:mod:`mmkeras.tuning.search`); ``DIR/trials.csv`` and TensorBoard's HParams
   dashboard (``DIR/logs``) record every trial;
3. restore each search's best trial at its best epoch and compare them on the
   validation examples (:mod:`mmkeras.evaluation.verdict`): ``DIR/verdict.json``;
4. touch the test data (if any) once, after selection: the selected models'
   accuracy on it;
5. save and export the fused model like ``mmkeras train`` (``DIR/model.keras``,
   ``DIR/report/``, ``DIR/saved_model/``), each baseline in
   ``DIR/baselines/<modality>.keras``, and ``DIR/tune.json`` (seeds, budget, best
   configurations, accuracies, timings) with ``DIR/summary.md`` opening with the verdict.
"""

import json
import os
import time

import keras
import numpy as np

from mmkeras.evaluation.features import single_modality_features
from mmkeras.evaluation.verdict import compare_fusion, not_applicable
from mmkeras.presets.custom import single_modality_preset
from mmkeras.tuning import space as space_module
from mmkeras.tuning.search import ALGORITHMS, FitClock, PresetHyperModel, Search
from mmkeras.tuning.trials import tidy
from mmkeras.utils.atomic import atomic_write_text

SUMMARY_FILE = "tune.json"


class TuneResult:
    """What :func:`tune` found.

    Attributes:
        model: the fused model (best trial, best epoch); for one-modality data, the only model.
        hyperparameters: dict. Its hyperparameter values.
        baselines: dict ``{modality: model}``, each modality alone (best trial, best epoch).
        verdict: :class:`~mmkeras.evaluation.verdict.Verdict` or None (one modality: nothing to fuse).
        summary: dict. Everything written to ``DIR/tune.json``.
    """

    def __init__(self, model, hyperparameters, baselines, verdict, summary):
        self.model, self.hyperparameters, self.baselines = model, hyperparameters, baselines
        self.verdict, self.summary = verdict, summary

    def __repr__(self):
        return f"TuneResult({self.summary.get('verdict_line')!r})"


def _labels_only(y):
    return np.asarray(y).reshape(-1)


def _load(feature_model, data, what, batch_size, allow_outside):
    """``(features, integer labels)`` of a manifest path or an ``(x, y)`` pair, through ``feature_model``."""
    from mmkeras.evaluation.classification_report import _features_and_labels

    if isinstance(data, (str, os.PathLike)):
        if not os.path.isfile(data):
            raise FileNotFoundError(f"{what} manifest {os.fspath(data)!r} does not exist; expected a .csv, .tsv "
                                    f"or .jsonl manifest file")
        return _features_and_labels(feature_model, data, None, "scores", batch_size, allow_outside)
    if not (isinstance(data, tuple) and len(data) == 2):
        raise ValueError(f"{what} data: expected a manifest path or an (x, y) pair of raw inputs and labels, got "
                         f"{type(data).__name__}")
    return _features_and_labels(feature_model, data[0], data[1], "scores", batch_size, allow_outside)


def _infer_classes(datasets):
    values = [v for data in datasets if isinstance(data, tuple) for v in _labels_only(data[1]).tolist()]
    if not values or any(isinstance(data, (str, os.PathLike)) for data in datasets):
        raise ValueError("tune: pass class_names or num_classes for manifest inputs (`mmkeras tune` reads them "
                         "from the manifests)")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return max(values) + 1, None
    names = sorted({str(v) for v in values})
    return len(names), names


def _predictions(model, features, batch_size):
    scores = model.predict(features, batch_size=batch_size, verbose=0)
    return np.argmax(scores["scores"] if isinstance(scores, dict) else scores, axis=-1)


def _write_json(path, value):
    atomic_write_text(path, json.dumps(value, indent=1, default=str) + "\n")


def tune(train, validation_data, preset, out, class_names=None, num_classes=None, budget_minutes=10.0,
         algorithm="hyperband", max_epochs=10, patience=3, max_trials=None, space=None, test_data=None,
         baselines=True, seed=0, batch_size=None, export=True, allow_outside=False, verbose=0, log=print):
    """Searches a preset's hyperparameters and each modality alone; says whether fusion is worth it.

    Args:
        train: a manifest path or an ``(x, y)`` pair (raw input dict, labels).
        validation_data: the same kinds; it picks every trial's best epoch, the best
            trial and the verdict.
        preset: str or dict. The starting preset (:func:`mmkeras.list_presets`).
        out: str. The tune directory; running again on it resumes the search.
        class_names: list of str or None.
        num_classes: int or None (integer labels). Inferred from ``(x, y)`` inputs if both are None.
        budget_minutes: float. Wall-clock budget of all searches, shared equally between the
            fused search and each single-modality one; None: no time limit (use ``max_trials``).
        algorithm: ``"hyperband"`` (default) or ``"bayesian"`` (Bayesian optimisation).
        max_epochs: int. Hyperband's largest number of epochs for a trial; a Bayesian trial's epochs.
        patience: int. Early stopping: epochs without a better validation accuracy.
        max_trials: int or None. Trials per search, on top of the budget.
        space: dict or None. Narrows the search space (:mod:`mmkeras.tuning.space`).
        test_data: a manifest path, an ``(x, y)`` pair or None. Evaluated once, after selection.
        baselines: bool. Also search each modality alone (the verdict needs them).
        seed: int. Seeds KerasTuner, weight initialisation, dropout and shuffling (recorded).
        batch_size: int or None. Default: the preset's.
        export: bool. Write a SavedModel version of the fused model to ``DIR/saved_model``.
        allow_outside: bool. Manifest file paths may lead outside the manifest's directory.
        verbose: 0, 1 or 2: Keras progress output of each trial.
        log: callable taking a line, or None.

    Returns:
        A :class:`TuneResult`; in a distributed worker (``KERASTUNER_TUNER_ID`` without ``chief``), None.

    Example:
    ```python
    result = mmkeras.tune("train.csv", "val.csv", preset="image_audio_small", out="runs/tune",
                          class_names=[str(d) for d in range(10)], budget_minutes=30)
    print(result.verdict.line())  # "fusion beats the best single modality (image, 97.2%) by +1.8 points ..."
    ```
    """
    from mmkeras.presets.presets import DEFAULT_AUGMENT
    from mmkeras.presets.registry import build_model, get_preset
    from mmkeras.tuning.search import dist_utils

    started = time.perf_counter()
    say = log or (lambda line: None)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown search algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    for name, value, low in (("max_epochs", max_epochs, 1), ("patience", patience, 1), ("max_trials", max_trials, 1)):
        if value is not None and (not isinstance(value, int) or value < low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if budget_minutes is not None and not budget_minutes > 0:
        raise ValueError(f"budget_minutes must be > 0, got {budget_minutes!r}")
    if budget_minutes is None and max_trials is None:
        raise ValueError("give budget_minutes or max_trials: a search needs an end")
    space_module.check_space(space)
    if test_data is not None and isinstance(test_data, (str, os.PathLike)) and not os.path.isfile(test_data):
        raise FileNotFoundError(f"test manifest {os.fspath(test_data)!r} does not exist; expected a .csv, .tsv or "
                                f".jsonl manifest file")
    base = get_preset(preset) if isinstance(preset, str) else dict(preset)
    if class_names is None and num_classes is None:
        num_classes, class_names = _infer_classes([train, validation_data])
    heads = {"num_classes": None if class_names else num_classes, "class_names": class_names}
    keras.utils.set_random_seed(seed)
    feature_model = build_model(base, seed=seed, compile=False, **heads)
    batch_size = batch_size or feature_model.mm_config["training"]["batch_size"]
    modalities = list(feature_model.modalities)
    if feature_model.preprocessor is not None and feature_model.preprocessor.needs_adapt:
        feature_model.adapt(train[0] if isinstance(train, tuple) else train, allow_outside=allow_outside)
    say(f"preprocessing the training and validation data once ({'+'.join(modalities)})")
    x_train, y_train = _load(feature_model, train, "training", batch_size, allow_outside)
    x_val, y_val = _load(feature_model, validation_data, "validation", batch_size, allow_outside)
    os.makedirs(out, exist_ok=True)

    def build(preset_dict, overrides):
        keras.utils.set_random_seed(seed)  # every trial starts from the same seed
        model = build_model(preset_dict, seed=seed, **heads, **overrides)
        if model.preprocessor is not None and model.preprocessor.needs_adapt:
            # The same training texts give the same vocabulary as the features were made with.
            model.adapt(train[0] if isinstance(train, tuple) else train, allow_outside=allow_outside)
        return model

    fused = len(modalities) > 1
    searches = [("fused" if fused else modalities[0], base, None)]
    if fused and baselines:
        searches += [(m, single_modality_preset(base, m), m) for m in modalities]
    share = None if budget_minutes is None else budget_minutes * 60.0 / len(searches)
    clock = FitClock()
    ran = []
    for index, (name, preset_dict, modality) in enumerate(searches):
        hypermodel = PresetHyperModel(preset_dict, build, space, DEFAULT_AUGMENT, clock, name=name)
        search = Search(name, index, hypermodel, out, algorithm, max_epochs, seed, share, max_trials)
        cut = (lambda f, m=modality: f) if modality is None else (
            lambda f, m=modality: single_modality_features(f, modalities, m))
        say(f"search {index + 1}/{len(searches)}: {name}"
            + (f", budget {share / 60:.1f} min" if share else "") + f" ({algorithm})")
        search.run((cut(x_train), y_train), (cut(x_val), y_val), batch_size, patience, verbose)
        ran.append((search, cut))
    if dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle():
        return None  # a worker: the chief selects, compares and exports
    search_seconds = time.perf_counter() - started

    selected, predictions, summary_searches = {}, {}, {}
    for search, cut in ran:
        model, hp, trial = search.best()
        selected[search.name] = (model, cut)
        predictions[search.name] = _predictions(model, cut(x_val), batch_size)
        summary_searches[search.name] = {
            "best_trial": trial.trial_id, "best_epoch": None if trial.best_step is None else int(trial.best_step) + 1,
            "validation_accuracy": float(np.mean(predictions[search.name] == y_val)),
            "hyperparameters": tidy(hp.values),
            "trials": len(search.tuner.oracle.trials), "wall_seconds": round(search.wall_seconds, 2),
            "budget_seconds": share, "budget_spent_seconds": round(search.spent_seconds, 2)}
    top_name = ran[0][0].name
    best_model = selected[top_name][0]
    verdict = None
    if fused and baselines:
        verdict = compare_fusion(y_val, predictions["fused"], {m: predictions[m] for m in modalities}, seed=seed)
        verdict.save(os.path.join(out, "verdict.json"))
        line = verdict.line()
    elif fused:
        line = "no verdict: the single-modality baselines were not searched (baselines=False)"
    else:
        line = not_applicable(modalities[0])
    say(line)
    if verdict is not None:
        say(verdict.table())

    test = None
    if test_data is not None:  # touched once, after every selection is made
        x_test, y_test = _load(feature_model, test_data, "test", batch_size, allow_outside)
        test = {name: float(np.mean(_predictions(model, cut(x_test), batch_size) == y_test))
                for name, (model, cut) in selected.items()}
        say("test accuracy (once, after selection): " + ", ".join(f"{k} {v:.2%}" for k, v in test.items()))

    from mmkeras.callbacks import atomic_save
    from mmkeras.evaluation.classification_report import report as classification_report

    model_path = os.path.join(out, "model.keras")
    atomic_save(best_model, model_path)
    os.makedirs(os.path.join(out, "baselines"), exist_ok=True)
    for name, (model, _) in selected.items():
        if name != top_name:
            atomic_save(model, os.path.join(out, "baselines", f"{name}.keras"))
    report = classification_report(best_model, x_val, y_val, batch_size=batch_size)
    report.save(os.path.join(out, "report"))
    export_path = None
    if export:
        from mmkeras.export import export_saved_model

        export_path = export_saved_model(best_model, os.path.join(out, "saved_model"))
    wall = time.perf_counter() - started
    summary = {
        "preset": base.get("name", "custom"), "modalities": modalities, "algorithm": algorithm, "seed": seed,
        "budget_minutes": budget_minutes, "budget_share_seconds": share, "max_epochs": max_epochs,
        "patience": patience, "max_trials": max_trials, "class_names": best_model.class_names,
        "searches": summary_searches, "verdict_line": line,
        "verdict": verdict.to_dict() if verdict is not None else None, "test_accuracy": test,
        "best_overrides": space_module.overrides(base, summary_searches[top_name]["hyperparameters"],
                                                 DEFAULT_AUGMENT),
        "wall_seconds": round(wall, 2), "search_seconds": round(search_seconds, 2),
        "fit_seconds": round(clock.fit_seconds, 2), "fits": clock.trials,
        "bookkeeping_share_of_search": round(1.0 - clock.fit_seconds / search_seconds, 4) if search_seconds else None,
        "model": model_path, "export": export_path,
    }
    _write_json(os.path.join(out, SUMMARY_FILE), summary)
    atomic_write_text(os.path.join(out, "summary.md"), summary_markdown(summary, verdict))
    return TuneResult(best_model, summary_searches[top_name]["hyperparameters"],
                      {name: model for name, (model, _) in selected.items() if name != top_name}, verdict, summary)


def summary_markdown(summary, verdict):
    """``DIR/summary.md``: the verdict line first, the comparison table, the best configuration."""
    lines = [f"**{summary['verdict_line']}**", ""]
    if verdict is not None:
        lines += ["```", verdict.table(), "```", ""]
    lines += ["| search | best trial | best epoch | validation accuracy | test accuracy | trials |",
              "|---|---|---|---|---|---|"]
    for name, s in summary["searches"].items():
        test = (summary["test_accuracy"] or {}).get(name)
        lines.append(f"| {name} | {s['best_trial']} | {s['best_epoch']} | {s['validation_accuracy']:.2%} | "
                     f"{'' if test is None else f'{test:.2%}'} | {s['trials']} |")
    top = next(iter(summary["searches"].values()))
    lines += ["", f"Best configuration ({summary['preset']} + overrides): `{json.dumps(top['hyperparameters'])}`",
              "", f"Seed {summary['seed']}, {summary['algorithm']}, budget {summary['budget_minutes']} min; "
              f"wall {summary['wall_seconds']:.0f} s, of which model.fit {summary['fit_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"
