"""Modalities, registered by name in :data:`MODALITIES` (image, audio, text, in ``present`` order).

Adding a modality is one file with a :class:`Modality` subclass and one
``@MODALITIES.register(name)``; see :mod:`mmkeras.modalities.base`.
"""

from mmkeras.modalities.audio import AudioModality
from mmkeras.modalities.base import (
    MODALITIES,
    Modality,
    default_limits,
    feature_specs,
    file_modality,
    is_raw_input,
    limit_docs,
    modality,
    modality_limits,
    modality_order,
    ordered,
    resolve_limits,
    sniff,
    text_modality,
)
from mmkeras.modalities.image import ImageModality
from mmkeras.modalities.text import TextModality

__all__ = ["MODALITIES", "Modality", "AudioModality", "ImageModality", "TextModality", "default_limits",
           "feature_specs", "file_modality", "is_raw_input", "limit_docs", "modality", "modality_limits",
           "modality_order", "ordered", "resolve_limits", "sniff", "text_modality"]
