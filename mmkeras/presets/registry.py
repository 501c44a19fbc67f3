"""Looking up presets by name and building models from them with overrides."""

import copy
import json

from mmkeras.models import ContrastiveModel, MultimodalClassifier, MultimodalVAE
from mmkeras.presets.presets import PRESETS

# Preset sections that select a task other than the classifier.
UNLABELLED_TASKS = {"contrastive": ContrastiveModel, "vae": MultimodalVAE}
_TRAINING_SHORTCUTS = ("learning_rate", "weight_decay", "batch_size", "optimizer", "clipnorm")
_PART_OPTIONS = ("dim", "dropout")  # the options of the tower and fusion contracts (towers/base.py, fusion/base.py)


def list_presets():
    """Returns ``{name: one-line description}`` of every registered preset.

    Example:
    ```python
    for name, description in mmkeras.list_presets().items():
        print(name, "-", description)
    ```
    """
    return {name: p.get("description", "") for name, p in sorted(PRESETS.items())}


def get_preset(name):
    """Returns a deep copy of a registered preset dict.

    Raises:
        ValueError: for an unknown name; the message lists the known names.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Known presets: {', '.join(sorted(PRESETS))}")
    return copy.deepcopy(PRESETS[name])


def register_preset(name, config):
    """Registers a new named preset (must be JSON-serialisable).

    Example:
    ```python
    mmkeras.register_preset("my_preset", {**mmkeras.get_preset("image_small"), "fusion": {...}})
    ```
    """
    json.dumps(config)  # fail now, not at save time, on non-serialisable values
    if name in PRESETS:
        raise ValueError(f"preset {name!r} already exists")
    PRESETS[name] = {**copy.deepcopy(config), "name": name}


def _deep_merge(base, override):
    if "type" in override and override["type"] != base.get("type"):
        # Another part (tower, fusion block): start from its own defaults, since the
        # old part's options (a CNN's filters) may not exist in the new one; only the
        # options every part takes (its width and dropout) carry over.
        return {**{k: base[k] for k in _PART_OPTIONS if k in base}, **copy.deepcopy(override)}
    out = dict(base)
    for key, value in override.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def build_model(preset, num_classes=None, class_names=None, mixed_precision=None, compile=True, preprocessor="auto",
                **overrides):
    """Builds a task (:class:`~mmkeras.models.MultimodalClassifier`, or
    :class:`~mmkeras.models.ContrastiveModel` for a preset with a ``contrastive``
    section, :class:`~mmkeras.models.MultimodalVAE` for one with a ``vae`` section)
    from a preset name or dict.

    Args:
        preset: str or dict. A name from :func:`list_presets` or a preset dict.
        num_classes: int or None. Adds (or resizes) a single classification head
            named ``"scores"``.
        class_names: list of str or None. Names returned in the ``classes`` output
            of an export; implies ``num_classes``.
        mixed_precision: ``"mixed_float16"``, ``"mixed_bfloat16"``, ``"float32"`` or
            None (keep the global Keras policy).
        compile: bool. Compile with the preset's defaults (its optimizer, head losses).
        preprocessor: bool or ``"auto"``. Build the raw-input preprocessor (needs
            TensorFlow); ``"auto"``: when TensorFlow can be imported. Without it the
            model trains and predicts on feature tensors (any Keras backend).
        **overrides: top-level preset keys, deep-merged (``fusion={"type":
            "fusion/attention"}``, ``modalities={"text": {"tower": {...}}}``,
            ``modality_dropout=0.3``, ``heads=[...]``); ``fusion="fusion/gated"``
            changes the fusion type; a tower or fusion block given a new
            ``type`` starts from that part's defaults, keeping only ``dim`` and
            ``dropout`` and the options given with it; ``learning_rate``, ``batch_size``,
            ``weight_decay``, ``optimizer``, ``clipnorm`` go to ``training``.

    Returns:
        A compiled task.

    Example:
    ```python
    model = mmkeras.build_model("image_audio_text_small", num_classes=10)
    model = mmkeras.build_model("image_audio_small", num_classes=10, fusion="fusion/attention",
                                modality_dropout=0.3, learning_rate=3e-4)
    ```
    """
    config = get_preset(preset) if isinstance(preset, str) else copy.deepcopy(preset)
    if not isinstance(config, dict):
        raise ValueError(f"preset must be a name or a dict, got {type(preset).__name__}")
    training = {k: overrides.pop(k) for k in _TRAINING_SHORTCUTS if k in overrides}
    if training:
        overrides["training"] = {**overrides.get("training", {}), **training}
    if isinstance(overrides.get("fusion"), str):
        overrides["fusion"] = {"type": overrides["fusion"]}
    config = _deep_merge(config, overrides)
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if num_classes is not None and num_classes != len(class_names):
            raise ValueError(f"num_classes={num_classes} but {len(class_names)} class_names were given")
        num_classes = len(class_names)
    if num_classes is not None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        heads = config.get("heads") or [{"name": "scores", "type": "classification"}]
        if len(heads) != 1:
            raise ValueError("num_classes applies to single-head presets; pass heads=[...] for multi-task models")
        config["heads"] = [{**heads[0], "units": num_classes, "class_names": class_names}]
    if mixed_precision is not None:
        config["mixed_precision"] = mixed_precision
    # A "contrastive" or "vae" section means a task trained without labels.
    task = next((cls for key, cls in UNLABELLED_TASKS.items() if key in config), MultimodalClassifier)
    model = task(config, preprocessor=preprocessor)
    if compile:
        model.compile()
    return model
