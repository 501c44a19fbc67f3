"""Datasets as raw multimodal examples: synthetic data, AV-digits (MNIST + FSDD), SST-2 and Fashion-MNIST.

Loaders return `(x, y)` with `x` a dict modality -> numpy object array of raw
values ("image": PNG bytes, "audio": WAV bytes, "text": str) and `y` int64
labels; the `*_dataset` builders wrap the same data in `tf.data`.
"""

from mmkeras.datasets.av_digits import av_digits, av_digits_dataset, av_digits_pairs
from mmkeras.datasets.fashion_mnist import fashion_mnist, fashion_mnist_arrays
from mmkeras.datasets.sst2 import sst2, sst2_dataset
from mmkeras.datasets.synthetic import modality_bayes_accuracy, synthetic

__all__ = [
    "av_digits",
    "av_digits_dataset",
    "av_digits_pairs",
    "fashion_mnist",
    "fashion_mnist_arrays",
    "modality_bayes_accuracy",
    "sst2",
    "sst2_dataset",
    "synthetic",
]
