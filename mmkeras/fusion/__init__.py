"""Fusion blocks, registered by key in :data:`FUSIONS`."""

from mmkeras.fusion.attention import AttentionFusion
from mmkeras.fusion.base import FUSIONS, Fusion, build_fusion
from mmkeras.fusion.concat import ConcatFusion
from mmkeras.fusion.gated import GatedFusion
from mmkeras.fusion.tensor import TensorFusion
from mmkeras.fusion.transformer import TransformerFusion

__all__ = [
    "FUSIONS", "Fusion", "build_fusion", "AttentionFusion", "ConcatFusion", "GatedFusion",
    "TensorFusion", "TransformerFusion",
]
