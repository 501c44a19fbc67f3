"""Tasks over one backbone: the classifier (heads, multi-task) and the contrastive embedder.

- :class:`MultimodalBackbone`: feature inputs -> towers -> missing-modality handling -> fusion.
- :class:`Task`: the base of tasks (compile defaults, raw inputs through the preprocessor).
- :class:`MultimodalClassifier` (also ``MultimodalModel``): heads on the fused vector.
- :class:`ContrastiveModel`: a shared embedding space, trained without labels.
- :class:`MultimodalVAE`: a joint latent space over any subset of modalities (generative, no labels).
"""

from mmkeras.models.config import resolve_config, resolve_shared
from mmkeras.models.contrastive_model import ContrastiveModel
from mmkeras.models.multimodal_backbone import MultimodalBackbone
from mmkeras.models.multimodal_classifier import MultimodalClassifier, MultimodalModel
from mmkeras.models.multimodal_vae import MultimodalVAE
from mmkeras.models.task import Task

__all__ = ["ContrastiveModel", "MultimodalBackbone", "MultimodalClassifier", "MultimodalModel", "MultimodalVAE", "Task",
           "resolve_config", "resolve_shared"]
