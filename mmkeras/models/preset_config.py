"""A preset name or dict plus overrides -> the config a task (or backbone) is built from.

The one place ``build_model`` and every ``from_preset`` turn a preset into a
config: deep-merged overrides, ``training`` shortcuts, ``num_classes`` /
``class_names`` as a single classification head, ``mixed_precision``.
"""

import copy

from mmkeras.models.config import single_head
from mmkeras.presets.catalog import get_preset

TRAINING_SHORTCUTS = ("learning_rate", "weight_decay", "batch_size", "optimizer", "clipnorm")
_PART_OPTIONS = ("dim", "dropout")  # the options of the tower and fusion contracts (towers/base.py, fusion/base.py)


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


def preset_config(preset, num_classes=None, class_names=None, mixed_precision=None, **overrides):
    """A preset (name or dict) with overrides applied; returns a new, unresolved config dict.

    Args:
        preset: str or dict. A registered preset name (:func:`mmkeras.list_presets`) or a preset dict.
        num_classes: int or None. Adds (or resizes) a single classification head named ``"scores"``.
        class_names: list of str or None. The head's class names; implies ``num_classes``.
        mixed_precision: str or None. The Keras dtype policy to build with (None: the global one).
        **overrides: top-level preset keys, deep-merged (see :func:`mmkeras.build_model`).

    Example:
    ```python
    config = preset_config("image_small", num_classes=3, learning_rate=3e-4)
    assert config["heads"][0]["units"] == 3 and config["training"]["learning_rate"] == 3e-4
    ```
    """
    config = get_preset(preset) if isinstance(preset, str) else copy.deepcopy(preset)
    if not isinstance(config, dict):
        raise ValueError(f"preset must be a name or a dict, got {type(preset).__name__}")
    training = {k: overrides.pop(k) for k in TRAINING_SHORTCUTS if k in overrides}
    if training:
        overrides["training"] = {**overrides.get("training", {}), **training}
    if isinstance(overrides.get("fusion"), str):
        overrides["fusion"] = {"type": overrides["fusion"]}
    config = _deep_merge(config, overrides)
    if num_classes is not None or class_names is not None:
        config["heads"] = single_head(config.get("heads"), num_classes, class_names)
    if mixed_precision is not None:
        config["mixed_precision"] = mixed_precision
    return config
