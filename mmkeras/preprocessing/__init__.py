"""In-graph preprocessing of raw images, audio and text (core TF ops only)."""

from mmkeras.preprocessing.preprocessor import Preprocessor, resolve_preprocessing

__all__ = ["MODALITY_ORDER", "Preprocessor", "resolve_preprocessing"]


def __getattr__(name):
    if name == "MODALITY_ORDER":  # asked each time: it grows as modalities register (an import would freeze it)
        from mmkeras.preprocessing import preprocessor

        return preprocessor.MODALITY_ORDER
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
