"""Single-modality variants of a preset.

A baseline is the same preset with one modality: the same tower, preprocessing,
augmentation, training settings and head, a concatenation "fusion" (a projection
of the one tower's vector to the same width) and no modality dropout. So the
comparison with the fused model changes one thing: the other modalities.
"""

import copy


def single_modality_preset(preset, modality):
    """The preset with only ``modality`` (see the module docstring).

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

