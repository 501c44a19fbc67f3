"""Export for TF Serving: the SavedModel, its warm-up requests and metadata, ``models.config``."""

from mmkeras.export.metadata import inspect_export
from mmkeras.export.models_config import models_config_text, write_models_config
from mmkeras.export.saved_model import build_serving_functions, export_saved_model, next_version
from mmkeras.export.warmup import default_warmup_examples

__all__ = [
    "build_serving_functions", "default_warmup_examples", "export_saved_model", "inspect_export",
    "models_config_text", "next_version", "write_models_config",
]
