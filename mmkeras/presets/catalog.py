"""The preset catalog: named preset dicts, looked up by name (no models imported).

It sits low in the import layers so every ``from_preset`` (the backbone's, the
preprocessor's, each task's) can read a preset; :func:`mmkeras.build_model`
(``presets/registry.py``) builds tasks from it.
"""

import copy
import json

from mmkeras.presets.presets import PRESETS


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
