"""Modality towers, registered by key in :data:`TOWERS`."""

from mmkeras.towers.base import TOWERS, Tower, build_tower, modality_preprocessing
from mmkeras.towers.conv import AudioCNN, AudioTemporalCNN, ImageCNN, ImageResNet
from mmkeras.towers.efficientnet_lite import ImageEfficientNetLite
from mmkeras.towers.keras_hub_backbone import ImageKerasHub, KerasHubTower, TextKerasHub
from mmkeras.towers.recurrent import AudioRNN, TextRNN
from mmkeras.towers.speech_embedding import AudioSpeechEmbedding
from mmkeras.towers.text_cnn import TextCNN
from mmkeras.towers.transformer import AudioTransformer, ImageViT, TextTransformer

__all__ = [
    "TOWERS", "Tower", "build_tower", "modality_preprocessing", "AudioCNN", "AudioTemporalCNN", "ImageCNN",
    "ImageResNet", "AudioRNN",
    "TextRNN", "TextCNN", "AudioTransformer", "ImageViT", "TextTransformer", "ImageEfficientNetLite",
    "ImageKerasHub", "KerasHubTower", "TextKerasHub", "AudioSpeechEmbedding",
]
