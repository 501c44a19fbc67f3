"""In-graph preprocessing of raw images, audio and text (core TF ops only)."""

from mmkeras.preprocessing.preprocessor import MODALITY_ORDER, Preprocessor, resolve_preprocessing

__all__ = ["MODALITY_ORDER", "Preprocessor", "resolve_preprocessing"]
