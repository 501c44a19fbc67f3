"""Building blocks shared by towers and fusion blocks (backend-agnostic Keras)."""

from mmkeras.layers.cross_attention import CrossAttentionBlock
from mmkeras.layers.pooling import MaskedMeanPooling
from mmkeras.layers.position import PositionEmbedding
from mmkeras.layers.transformer import TransformerBlock, TransformerEncoder

__all__ = ["CrossAttentionBlock", "MaskedMeanPooling", "PositionEmbedding", "TransformerBlock", "TransformerEncoder"]

from mmkeras.layers.missing import MissingModality, ModalityDropout  # noqa: E402

__all__ += ["MissingModality", "ModalityDropout"]

from mmkeras.layers.augment import ImageAugmentation, SpecAugment, WordDropout  # noqa: E402

__all__ += ["ImageAugmentation", "SpecAugment", "WordDropout"]

from mmkeras.layers.audio_augment import AudioAugmentation, AudioPerturbation, audio_augmentation  # noqa: E402, F401

__all__ += ["AudioAugmentation", "AudioPerturbation"]

from mmkeras.layers.windows import FoldWindows, WindowPooling  # noqa: E402

__all__ += ["FoldWindows", "WindowPooling"]

from mmkeras.layers.batch_norm import BatchNormalization  # noqa: E402

__all__ += ["BatchNormalization"]

from mmkeras.layers.decoders import FeatureDecoder  # noqa: E402
from mmkeras.layers.gaussian import GaussianEncoder, GaussianSample, ProductOfExperts  # noqa: E402

__all__ += ["FeatureDecoder", "GaussianEncoder", "GaussianSample", "ProductOfExperts"]

from mmkeras.layers.gradient_modulation import GradientModulation  # noqa: E402

__all__ += ["GradientModulation"]
