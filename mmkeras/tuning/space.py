"""The search space of ``mmkeras tune``: hyperparameters -> overrides of a preset.

A trial is the starting preset plus overrides (:func:`mmkeras.build_model`'s
keywords), so every trial is a preset config and its best one is exported like
``mmkeras train``'s model. The dimensions (:data:`SEARCH_SPACE`):

- ``fusion``: the preset's block, ``fusion/concat``, ``fusion/gated``,
  ``fusion/attention``, ``fusion/lmf`` (the block's ``dim`` and ``dropout`` carry over);
- ``tower_scale``: 0.5, 1, 2, multiplying every tower's ``dim``, ``filters`` and
  ``widths`` (rounded to multiples of 8);
- ``learning_rate``: 1e-4 to 1e-2, log scale (``training.learning_rate``);
- ``weight_decay``: 0, 1e-5, 1e-4, 1e-3, 1e-2 (``training.weight_decay``);
- ``dropout``: 0 to 0.5, step 0.1 (the fusion block's and every tower's);
- ``modality_dropout``: 0 to 0.5, step 0.1 (dropping a modality of a training example);
- ``augment_strength``: 0, 0.5, 1, 2, scaling each modality's augmentation (the
  preset's, else ``mmkeras train --augment``'s); 0: none.

``fusion`` and ``modality_dropout`` exist only where there is something to fuse
(two modalities or more). Each dimension starts at the preset's own value
(KerasTuner's default). ``space=`` narrows it: ``{"fusion": "fusion/gated"}``
fixes a value, ``{"learning_rate": [1e-3, 3e-3]}`` searches a list.
"""

import copy

FUSION_CHOICES = ("fusion/concat", "fusion/gated", "fusion/attention", "fusion/lmf")
SEARCH_SPACE = {
    "fusion": {"choice": FUSION_CHOICES},
    "tower_scale": {"choice": (0.5, 1.0, 2.0)},
    "learning_rate": {"min": 1e-4, "max": 1e-2, "sampling": "log"},
    "weight_decay": {"choice": (0.0, 1e-5, 1e-4, 1e-3, 1e-2)},
    "dropout": {"min": 0.0, "max": 0.5, "step": 0.1},
    "modality_dropout": {"min": 0.0, "max": 0.5, "step": 0.1},
    "augment_strength": {"choice": (0.0, 0.5, 1.0, 2.0)},
}
MULTIMODAL_ONLY = ("fusion", "modality_dropout")
_SCALED_TOWER_KEYS = ("dim", "filters", "widths")
_NOT_SCALED_AUGMENT = ("seed",)


def check_space(space):
    """Checks a user's ``space`` narrowing: known names, lists or single values."""
    space = dict(space or {})
    unknown = sorted(set(space) - set(SEARCH_SPACE))
    if unknown:
        raise ValueError(f"search space: unknown dimension(s) {unknown}; known: {sorted(SEARCH_SPACE)}")
    for name, value in space.items():
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError(f"search space {name!r}: an empty list; give one value or several")
    return space


def _preset_defaults(preset, default_augment):
    fusion = preset.get("fusion") or {}
    training = preset.get("training") or {}
    augmented = any((spec.get("augment") or None) for spec in preset["modalities"].values())
    return {"fusion": fusion.get("type"), "tower_scale": 1.0, "learning_rate": training.get("learning_rate", 1e-3),
            "weight_decay": training.get("weight_decay", 1e-4), "dropout": fusion.get("dropout", 0.1),
            "modality_dropout": preset.get("modality_dropout", 0.0),
            "augment_strength": 1.0 if augmented else 0.0}


def _nearest(values, target):
    return min(values, key=lambda v: abs(v - target)) if all(isinstance(v, (int, float)) for v in values) else (
        target if target in values else values[0])


def declare(hp, preset, space=None, default_augment=None):
    """Declares the hyperparameters on a KerasTuner ``hp`` and returns the preset overrides they give.

    Args:
        hp: ``keras_tuner.HyperParameters``.
        preset: dict. The starting preset (its values are the defaults).
        space: dict or None. Narrowing (see the module docstring).
        default_augment: dict ``{modality: augment options}`` for modalities the preset does not augment.

    Returns:
        dict of :func:`mmkeras.build_model` overrides.

    Example:
    ```python
    hp = keras_tuner.HyperParameters()
    overrides = declare(hp, mmkeras.get_preset("image_audio_small"))
    model = mmkeras.build_model("image_audio_small", num_classes=10, **overrides)
    ```
    """
    space = check_space(space)
    defaults = _preset_defaults(preset, default_augment)
    multimodal = len(preset["modalities"]) > 1 and preset.get("fusion")
    values = {}
    for name, spec in SEARCH_SPACE.items():
        if name in MULTIMODAL_ONLY and not multimodal:
            continue
        given = space.get(name)
        if given is not None and not isinstance(given, (list, tuple)):
            values[name] = hp.Fixed(name, given)
            continue
        choices = list(given) if given is not None else spec.get("choice")
        if name == "fusion" and given is None:
            choices = [defaults["fusion"], *(c for c in choices if c != defaults["fusion"])]
        if choices is not None:
            values[name] = hp.Choice(name, choices, default=_nearest(choices, defaults[name]),
                                     ordered=name != "fusion")
        else:
            default = min(max(defaults[name], spec["min"]), spec["max"])
            if "step" in spec:
                default = round(round(default / spec["step"]) * spec["step"], 6)
            values[name] = hp.Float(name, spec["min"], spec["max"], step=spec.get("step"),
                                    sampling=spec.get("sampling", "linear"), default=default)
    return overrides(preset, values, default_augment or {})


def _scale_int(value, scale):
    return max(8, int(round(value * scale / 8)) * 8)


def _scale_tower(tower, scale, dropout):
    tower = dict(tower)
    if scale != 1.0:
        for key in _SCALED_TOWER_KEYS:
            if isinstance(tower.get(key), list):
                tower[key] = [_scale_int(v, scale) for v in tower[key]]
            elif isinstance(tower.get(key), int) and not isinstance(tower.get(key), bool):
                tower[key] = _scale_int(tower[key], scale)
    if dropout is not None:
        tower["dropout"] = dropout
    return tower


def scale_augment(options, strength):
    """Augmentation options scaled by ``strength`` (numbers only; ints rounded, at least 1); None at 0."""
    if not options or strength <= 0:
        return None
    out = {}
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or key in _NOT_SCALED_AUGMENT:
            out[key] = value
        elif isinstance(value, int):
            out[key] = max(1, int(round(value * strength))) if value else 0
        else:
            out[key] = min(0.9, value * strength)
    return out


def overrides(preset, values, default_augment):
    """The :func:`mmkeras.build_model` overrides for hyperparameter ``values`` (a dict name -> value)."""
    out = {}
    if "learning_rate" in values:
        out["learning_rate"] = float(values["learning_rate"])
    if "weight_decay" in values:
        out["weight_decay"] = float(values["weight_decay"])
    if "modality_dropout" in values:
        out["modality_dropout"] = float(values["modality_dropout"])
    dropout = float(values["dropout"]) if "dropout" in values else None
    if preset.get("fusion"):
        fusion = {"type": values.get("fusion") or preset["fusion"]["type"]}
        if dropout is not None:
            fusion["dropout"] = dropout
        out["fusion"] = fusion
    modalities = {}
    for m, spec in preset["modalities"].items():
        entry = {"tower": _scale_tower(spec["tower"], float(values.get("tower_scale", 1.0)), dropout)}
        if "augment_strength" in values:
            base = spec.get("augment") or default_augment.get(m)
            entry["augment"] = scale_augment(base, float(values["augment_strength"]))
        modalities[m] = entry
    out["modalities"] = modalities
    return copy.deepcopy(out)
