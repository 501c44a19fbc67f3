"""Building tasks from presets (names in :mod:`mmkeras.presets.catalog`) with overrides."""

from mmkeras.models import ContrastiveModel, MultimodalClassifier, MultimodalVAE
from mmkeras.models.preset_config import preset_config
from mmkeras.presets.catalog import PRESETS, get_preset, list_presets, register_preset

__all__ = ["PRESETS", "UNLABELLED_TASKS", "build_model", "get_preset", "list_presets",
           "register_preset"]

# Preset sections that select a task other than the classifier.
UNLABELLED_TASKS = {"contrastive": ContrastiveModel, "vae": MultimodalVAE}


def build_model(preset, num_classes=None, class_names=None, mixed_precision=None, compile=True, preprocessor="auto",
                **overrides):
    """Builds a task (:class:`~mmkeras.models.MultimodalClassifier`, or
    :class:`~mmkeras.models.ContrastiveModel` for a preset with a ``contrastive``
    section, :class:`~mmkeras.models.MultimodalVAE` for one with a ``vae`` section)
    from a preset name or dict.

    The entry point that picks the task from the preset. It is a thin wrapper:
    ``build_model(name, num_classes=3)`` is
    ``MultimodalClassifier.from_preset(name, num_classes=3)`` (each task's
    ``from_preset`` takes the same arguments); to compose a task from a backbone
    and a preprocessor built by hand, see :class:`~mmkeras.models.MultimodalClassifier`.

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
    config = preset_config(preset, num_classes=num_classes, class_names=class_names,
                           mixed_precision=mixed_precision, **overrides)
    # A "contrastive" or "vae" section means a task trained without labels.
    task = next((cls for key, cls in UNLABELLED_TASKS.items() if key in config), MultimodalClassifier)
    model = task(config, preprocessor=preprocessor)
    if compile:
        model.compile()
    return model
