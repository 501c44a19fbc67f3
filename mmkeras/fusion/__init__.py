"""Fusion blocks, registered by key in :data:`FUSIONS`."""

from mmkeras.fusion.attention import AttentionFusion
from mmkeras.fusion.base import FUSIONS, Fusion, TokenFusion, build_fusion
from mmkeras.fusion.bottleneck import BottleneckFusion
from mmkeras.fusion.coattention import CoAttentionFusion
from mmkeras.fusion.concat import ConcatFusion
from mmkeras.fusion.gated import GatedFusion
from mmkeras.fusion.late import LateFusion
from mmkeras.fusion.lmf import LowRankFusion
from mmkeras.fusion.mult import MulTFusion
from mmkeras.fusion.perceiver import PerceiverFusion
from mmkeras.fusion.tensor import TensorFusion
from mmkeras.fusion.transformer import TransformerFusion

__all__ = [
    "FUSIONS", "Fusion", "TokenFusion", "build_fusion", "AttentionFusion", "BottleneckFusion", "CoAttentionFusion",
    "ConcatFusion", "GatedFusion", "LateFusion", "LowRankFusion", "MulTFusion", "PerceiverFusion", "TensorFusion",
    "TransformerFusion",
]
