"""The multimodal model class and config resolution."""

from mmkeras.models.config import resolve_config
from mmkeras.models.multimodal_model import MultimodalModel

__all__ = ["MultimodalModel", "resolve_config"]
