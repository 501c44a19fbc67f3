"""Modalities, registered by name in :data:`MODALITIES` (image, audio, text, in ``present`` order).

Adding a modality is one file with a :class:`Modality` subclass and one
``@MODALITIES.register(name)``; see :mod:`mmkeras.modalities.base`.
"""

from mmkeras.modalities.audio import AudioModality
from mmkeras.modalities.base import (
    MODALITIES,
    Modality,
    feature_specs,
    is_raw_input,
    modality,
    modality_order,
    ordered,
)
from mmkeras.modalities.image import ImageModality
from mmkeras.modalities.text import TextModality

__all__ = ["MODALITIES", "Modality", "AudioModality", "ImageModality", "TextModality", "feature_specs",
           "is_raw_input", "modality", "modality_order", "ordered"]
