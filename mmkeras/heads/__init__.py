"""Task heads, registered by key in :data:`HEADS`."""

from mmkeras.heads.base import HEADS, ClassificationHead, Head, MultiLabelHead, RegressionHead, build_head

__all__ = ["HEADS", "Head", "ClassificationHead", "MultiLabelHead", "RegressionHead", "build_head"]
