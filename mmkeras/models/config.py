"""Resolution of a preset dict into the full model config a model is built from."""

import copy

from mmkeras.fusion import FUSIONS
from mmkeras.heads import HEADS
from mmkeras.modalities import MODALITIES, modality, ordered
from mmkeras.towers import TOWERS, modality_preprocessing
from mmkeras.training.mixed_precision import POLICIES
from mmkeras.training.optimizers import check_optimizer

TRAINING_DEFAULTS = {
    "optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 1e-4, "batch_size": 32,
    "clipnorm": None,
    # Fine-tuning: a linear warm-up (steps) then constant rate, or a cosine decay over decay_steps;
    # per-tower rate factors {modality: factor}; {modality: N} trains only a tower's top N blocks (0: frozen).
    "warmup_steps": 0, "decay_steps": None, "learning_rate_multipliers": {}, "trainable_blocks": {},
}
SHARED_KEYS = {"name", "description", "modalities", "modality_dropout", "training", "mixed_precision", "seed"}
DEFAULT_FUSION = {"type": "fusion/concat", "dim": 128}
MODALITY_KEYS = {"preprocessing", "tower", "augment"}
HEAD_KEYS = {"name", "type", "units", "loss_weight", "class_names"}
# Unimodal supervision (classifier task key): a copy of every head on each modality's own tower vector,
# trained with its own loss; training only (predictions, export and serving read the fused heads).
AUXILIARY_DEFAULTS = {"loss_weight": 1.0}
# On-the-fly gradient modulation (OGM, Peng et al. CVPR 2022; classifier task key, needs auxiliary_heads):
# each step, a modality whose unimodal heads score above the others' mean gets its fused-path gradient scaled
# by 1 - tanh(alpha * (ratio - 1)). Training only.
GRADIENT_MODULATION_DEFAULTS = {"alpha": 0.5}
# What a backbone is built from: its architecture. The rest of a preset (heads, training, name,
# description, a task's own section) belongs to the task.
BACKBONE_KEYS = ("modalities", "fusion", "modality_dropout", "seed", "mixed_precision")


def _check_keys(where, given, allowed):
    unknown = set(given) - set(allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _check_part(where, spec, registry, extra=()):
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"{where} needs a dict with a 'type' (one of {registry.keys()}), got {spec!r}")
    registry.get(spec["type"])  # unknown type: the registry's error lists the known ones
    registry.check_options(spec["type"], set(spec) - {"type"} - set(extra), where)


def resolve_shared(preset, task_keys):
    """Checks and fills the keys every task shares (modalities, training, ...); returns a new dict.

    Args:
        preset: dict. The preset.
        task_keys: set of str. The top-level keys the task adds (``fusion``, ``heads``, ``contrastive``, ...);
            the task resolves them.
    """
    config = copy.deepcopy(preset)
    allowed = SHARED_KEYS | set(task_keys)
    unknown = set(config) - allowed
    if unknown:
        raise ValueError(f"Unknown preset key(s) {sorted(unknown)}; known: {sorted(allowed)}")
    modalities = config.get("modalities") or {}
    if not modalities:
        raise ValueError("A preset needs at least one modality under 'modalities'")
    for m in modalities:
        if m not in MODALITIES:
            raise ValueError(f"Unknown modality {m!r}; expected a subset of {MODALITIES.in_order()}")
    resolved = {}
    for m in ordered(modalities):
        spec = dict(modalities[m])
        _check_keys(f"modalities.{m}", spec, MODALITY_KEYS)
        if "tower" not in spec:
            raise ValueError(f"modality {m!r} needs a 'tower' config with a 'type'")
        tower = dict(spec["tower"])
        _check_part(f"modalities.{m}.tower", tower, TOWERS)
        # A pretrained tower implies its preprocessing (vocabulary, image size); the preset's options win.
        spec["preprocessing"] = modality(m).resolve(modality_preprocessing({**spec, "tower": tower}))
        for key, value in modality(m).tower_defaults(spec["preprocessing"]).items():
            if key in TOWERS.options(tower["type"]):
                tower.setdefault(key, value)
        spec["tower"] = tower
        spec.setdefault("augment", None)
        if spec["augment"]:
            _check_keys(f"modalities.{m}.augment", spec["augment"], modality(m).augment_options)
        resolved[m] = spec
    config["modalities"] = resolved
    config.setdefault("name", "custom")
    config.setdefault("description", "")
    config.setdefault("modality_dropout", 0.0)
    config.setdefault("mixed_precision", None)
    config.setdefault("seed", None)
    _check_keys("training", config.get("training") or {}, TRAINING_DEFAULTS)
    config["training"] = {**TRAINING_DEFAULTS, **(config.get("training") or {})}
    _check_fine_tuning(config["training"], list(resolved))
    check_optimizer(config["training"])
    if config["mixed_precision"] not in POLICIES:
        raise ValueError(f"mixed_precision must be one of {POLICIES}, got {config['mixed_precision']!r}")
    return config


def _check_fine_tuning(training, modalities):
    for key, valid, expected in (("learning_rate_multipliers", lambda v: isinstance(v, (int, float)) and v >= 0,
                                  "a number >= 0"),
                                 ("trainable_blocks", lambda v: v is None or (isinstance(v, int) and v >= 0),
                                  "an integer >= 0 (0: frozen) or None (all)")):
        per_tower = training[key]
        if not isinstance(per_tower, dict):
            raise ValueError(f"training.{key} must be a dict {{modality: value}}, got {per_tower!r}")
        for m, value in per_tower.items():
            if m not in modalities:
                raise ValueError(f"training.{key} names {m!r}, which is not one of this preset's modalities "
                                 f"{modalities}")
            if isinstance(value, bool) or not valid(value):
                raise ValueError(f"training.{key}[{m!r}] must be {expected}, got {value!r}")
    for key in ("warmup_steps", "decay_steps"):
        value = training[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"training.{key} must be an integer >= 0, got {value!r}")


def resolve_headless(preset, section, defaults, what, example):
    """Resolves a preset of a task without heads or fusion (contrastive, VAE): shared keys plus
    its own ``section`` (a dict checked against ``defaults`` and filled from them); returns a new dict.

    Args:
        preset: dict. The preset.
        section: str. The task's top-level key (``"contrastive"``, ``"vae"``).
        defaults: dict. Every option of the section with its default.
        what: str. The task's name in error messages (``"a contrastive model"``).
        example: str. An example section for the error where it is missing.
    """
    if preset.get("heads"):
        raise ValueError(f"{what} has no classification heads; drop 'heads'/num_classes")
    if preset.get("fusion"):
        raise ValueError(f"{what} has no fusion block (it combines the modalities itself); drop 'fusion'")
    preset = {k: v for k, v in preset.items() if k not in ("heads", "fusion")}
    config = resolve_shared(preset, {section})
    options = config.get(section)
    if not isinstance(options, dict):
        raise ValueError(f"{what} needs a {section!r} section, e.g. {example}")
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"Unknown {section} option(s) {sorted(unknown)}; known: {sorted(defaults)}")
    config[section] = {**defaults, **options}
    config["fusion"] = None
    config["heads"] = []
    return config


def resolve_fusion(config, default=DEFAULT_FUSION):
    """Fills and checks the ``fusion`` section in place (None means no fusion block)."""
    config.setdefault("fusion", dict(default) if default else None)
    if config["fusion"] is not None:
        _check_part("fusion", config["fusion"], FUSIONS)
    return config


def resolve_config(preset):
    """Resolves a classifier/regressor/multi-task preset: shared keys, ``fusion`` and ``heads``.

    Towers get options that follow from preprocessing (``vocab_size`` from the text
    vocabulary); every key is checked and unknown ones are named with the allowed ones.

    Example:
    ```python
    config = resolve_config({**mmkeras.get_preset("image_small"), "heads": [{"name": "scores", "units": 3}]})
    ```
    """
    config = resolve_fusion(resolve_shared(preset, {"fusion", "heads", "auxiliary_heads", "gradient_modulation"}))
    config["auxiliary_heads"] = _resolve_auxiliary(config.get("auxiliary_heads"))
    heads = config.get("heads")
    if not heads:
        raise ValueError("A preset needs at least one head (pass num_classes=... to build_model)")
    names = [h.get("name") for h in heads]
    if len(set(names)) != len(names) or None in names:
        raise ValueError(f"heads need unique names, got {names}")
    for h in heads:
        h.setdefault("type", "classification")
        _check_part(f"head {h['name']!r}", h, HEADS, extra=HEAD_KEYS)
        if "units" not in h or not isinstance(h["units"], int) or h["units"] < 1:
            raise ValueError(f"head {h['name']!r} needs a positive integer 'units' (num_classes), got {h.get('units')}")
        h.setdefault("loss_weight", 1.0)
        class_names = h.get("class_names")
        if class_names is not None and len(class_names) != h["units"]:
            raise ValueError(f"head {h['name']!r} has {h['units']} units but {len(class_names)} class_names")
    config["gradient_modulation"] = _resolve_gradient_modulation(config)
    return config


def _resolve_auxiliary(options):
    """``auxiliary_heads``: None / False (off), True (defaults) or a dict of :data:`AUXILIARY_DEFAULTS` keys."""
    if options is None or options is False:
        return None
    if options is True:
        options = {}
    if not isinstance(options, dict):
        raise ValueError(f"auxiliary_heads must be a dict such as {{'loss_weight': 0.5}}, True or None, "
                         f"got {options!r}")
    _check_keys("auxiliary_heads", options, AUXILIARY_DEFAULTS)
    options = {**AUXILIARY_DEFAULTS, **options}
    weight = options["loss_weight"]
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise ValueError(f"auxiliary_heads.loss_weight must be a number > 0, got {weight!r}")
    return options


def _resolve_gradient_modulation(config):
    """``gradient_modulation``: None / False (off), True (defaults) or a dict of
    :data:`GRADIENT_MODULATION_DEFAULTS` keys; it reads the unimodal heads' scores, so it needs
    ``auxiliary_heads`` and a classification head."""
    options = config.get("gradient_modulation")
    if options is None or options is False:
        return None
    if options is True:
        options = {}
    if not isinstance(options, dict):
        raise ValueError(f"gradient_modulation must be a dict such as {{'alpha': 0.5}}, True or None, got {options!r}")
    _check_keys("gradient_modulation", options, GRADIENT_MODULATION_DEFAULTS)
    options = {**GRADIENT_MODULATION_DEFAULTS, **options}
    alpha = options["alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"gradient_modulation.alpha must be a number > 0, got {alpha!r}")
    if not config["auxiliary_heads"]:
        raise ValueError("gradient_modulation needs auxiliary_heads (it compares the modalities' unimodal heads' "
                         "scores): add auxiliary_heads: {'loss_weight': 1.0} or drop gradient_modulation")
    if not any(h["type"] == "classification" for h in config["heads"]):
        raise ValueError(f"gradient_modulation needs a 'classification' head (it compares the probability of the "
                         f"true class), got head types {[h['type'] for h in config['heads']]}")
    return options


# Preset sections of tasks that combine the modalities themselves: their backbone has no fusion block.
UNFUSED_SECTIONS = ("contrastive", "vae")


def resolve_backbone_config(preset):
    """Resolves the architecture part of a preset (a backbone's config); task keys are dropped.

    The backbone keeps ``modalities``, ``fusion``, ``modality_dropout``, ``seed`` and
    ``mixed_precision`` (``BACKBONE_KEYS``); ``heads``, ``training``,
    ``name`` and a task's own section belong to the task. A preset with a
    ``contrastive`` or ``vae`` section gets no fusion block unless it names one.

    Example:
    ```python
    config = resolve_backbone_config(mmkeras.get_preset("image_audio_small"))
    assert "heads" not in config and config["fusion"]["type"] == "fusion/concat"
    ```
    """
    default = None if any(preset.get(section) for section in UNFUSED_SECTIONS) else DEFAULT_FUSION
    config = resolve_fusion(resolve_shared(backbone_architecture(preset), {"fusion"}), default=default)
    return backbone_architecture(config)


def backbone_architecture(config):
    """The :data:`BACKBONE_KEYS` of a (resolved) preset, as a new dict; task keys are left out."""
    return {k: copy.deepcopy(v) for k, v in config.items() if k in BACKBONE_KEYS}


def single_head(heads, num_classes=None, class_names=None):
    """``heads`` with its one classification head given ``num_classes`` / ``class_names``.

    Args:
        heads: list of dict or None. A preset's heads (None or []: a new head named ``"scores"``).
        num_classes: int or None. The number of classes (at least 2).
        class_names: list or None. The class names (as strings); implies ``num_classes``.

    Example:
    ```python
    single_head(None, class_names=["cat", "dog"])
    # [{"name": "scores", "type": "classification", "units": 2, "class_names": ["cat", "dog"]}]
    ```
    """
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if num_classes is not None and num_classes != len(class_names):
            raise ValueError(f"num_classes={num_classes} but {len(class_names)} class_names were given")
        num_classes = len(class_names)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    heads = heads or [{"name": "scores", "type": "classification"}]
    if len(heads) != 1:
        raise ValueError("num_classes applies to single-head presets; pass heads=[...] for multi-task models")
    return [{**heads[0], "units": num_classes, "class_names": class_names}]
