"""The multimodal model class and config resolution."""

from mmkeras.models.config import resolve_config
from mmkeras.models.contrastive_model import ContrastiveModel
from mmkeras.models.multimodal_model import MultimodalModel

__all__ = ["ContrastiveModel", "MultimodalModel", "resolve_config"]
