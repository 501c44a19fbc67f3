"""Resolution of a preset dict into the full model config a model is built from."""

import copy

from mmkeras.preprocessing import MODALITY_ORDER, resolve_preprocessing

TRAINING_DEFAULTS = {
    "optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 1e-4, "batch_size": 32,
    "clipnorm": None,
}
MODEL_KEYS = {
    "name", "description", "modalities", "fusion", "heads", "modality_dropout", "training",
    "mixed_precision", "seed",
}


def resolve_config(preset):
    """Fills defaults into a preset and checks it; returns a new dict.

    Towers that embed tokens get ``vocab_size`` from the text preprocessing.
    """
    config = copy.deepcopy(preset)
    unknown = set(config) - MODEL_KEYS
    if unknown:
        raise ValueError(f"Unknown preset key(s) {sorted(unknown)}; known: {sorted(MODEL_KEYS)}")
    modalities = config.get("modalities") or {}
    if not modalities:
        raise ValueError("A preset needs at least one modality under 'modalities'")
    for m in modalities:
        if m not in MODALITY_ORDER:
            raise ValueError(f"Unknown modality {m!r}; expected a subset of {list(MODALITY_ORDER)}")
    resolved = {}
    for m in MODALITY_ORDER:
        if m not in modalities:
            continue
        spec = dict(modalities[m])
        if "tower" not in spec:
            raise ValueError(f"modality {m!r} needs a 'tower' config with a 'type'")
        spec["preprocessing"] = resolve_preprocessing(m, spec.get("preprocessing"))
        tower = dict(spec["tower"])
        if m == "text" and tower["type"].startswith("text/"):
            tower.setdefault("vocab_size", spec["preprocessing"]["vocab_size"])
        spec["tower"] = tower
        spec.setdefault("augment", None)
        resolved[m] = spec
    config["modalities"] = resolved
    config.setdefault("name", "custom")
    config.setdefault("description", "")
    config.setdefault("fusion", {"type": "fusion/concat", "dim": 128})
    config.setdefault("modality_dropout", 0.0)
    config.setdefault("mixed_precision", None)
    config.setdefault("seed", None)
    config["training"] = {**TRAINING_DEFAULTS, **(config.get("training") or {})}
    heads = config.get("heads")
    if not heads:
        raise ValueError("A preset needs at least one head (pass num_classes=... to build_model)")
    names = [h.get("name") for h in heads]
    if len(set(names)) != len(names) or None in names:
        raise ValueError(f"heads need unique names, got {names}")
    for h in heads:
        if "units" not in h or not isinstance(h["units"], int) or h["units"] < 1:
            raise ValueError(f"head {h['name']!r} needs a positive integer 'units' (num_classes), got {h.get('units')}")
        h.setdefault("type", "classification")
        h.setdefault("loss_weight", 1.0)
        class_names = h.get("class_names")
        if class_names is not None and len(class_names) != h["units"]:
            raise ValueError(f"head {h['name']!r} has {h['units']} units but {len(class_names)} class_names")
    return config
