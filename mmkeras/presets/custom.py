"""Presets a user derives: one read from a JSON file, a preset reduced to one modality.

A single-modality baseline is the same preset with one modality: the same tower,
preprocessing, augmentation, training settings and head, a concatenation "fusion" (a
projection of the one tower's vector to the same width) and no modality dropout. So the
comparison with the fused model changes one thing: the other modalities.
"""

import copy
import json
import os


def load_preset(name_or_file):
    """A preset by name (the error lists the known ones) or from a ``.json`` file.

    Example:
    ```python
    load_preset("image_audio_small")["name"]     # 'image_audio_small'
    load_preset("my_preset.json")                 # a preset dict saved by a user
    ```
    """
    from mmkeras.presets.catalog import get_preset

    if name_or_file.endswith(".json") or os.path.isfile(name_or_file):
        try:
            with open(name_or_file, encoding="utf-8") as f:
                preset = json.load(f)
        except FileNotFoundError:
            raise ValueError(f"--preset {name_or_file!r}: no such preset file; expected a preset name "
                             f"(`mmkeras presets`) or a preset .json file") from None
        except ValueError as err:
            raise ValueError(f"--preset {name_or_file!r} is not valid JSON ({err}); expected a preset dict") from None
        if not isinstance(preset, dict):
            raise ValueError(f"--preset {name_or_file!r} holds {type(preset).__name__}; expected a preset dict")
        preset.setdefault("name", os.path.splitext(os.path.basename(name_or_file))[0])
        return preset
    try:
        return get_preset(name_or_file)
    except ValueError as err:
        raise ValueError(f"--preset: {err}") from None

def single_modality_preset(preset, modality):
    """The preset with only ``modality``: a single-modality baseline (see the module docstring).

    Example:
    ```python
    image_only = single_modality_preset(mmkeras.get_preset("image_audio_small"), "image")
    sorted(image_only["modalities"])   # ['image']
    ```
    """
    if modality not in preset["modalities"]:
        raise ValueError(f"preset {preset.get('name', 'custom')!r} has no modality {modality!r}; its modalities: "
                         f"{sorted(preset['modalities'])}")
    out = copy.deepcopy(preset)
    out["modalities"] = {modality: out["modalities"][modality]}
    out["name"] = f"{preset.get('name', 'custom')}__{modality}_only"
    out["description"] = f"{modality}-only baseline of {preset.get('name', 'custom')}"
    out.pop("modality_dropout", None)
    fusion = preset.get("fusion") or {}
    out["fusion"] = {"type": "fusion/concat", **{k: fusion[k] for k in ("dim", "dropout") if k in fusion}}
    training = out.get("training") or {}
    for key in ("learning_rate_multipliers", "trainable_blocks"):
        if isinstance(training.get(key), dict):
            training[key] = {m: v for m, v in training[key].items() if m == modality}
    return out

