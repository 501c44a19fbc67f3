"""The image modality: encoded image bytes -> ``[H, W, C]`` float pixels.

Decoding, resizing and normalisation are graph code in
:mod:`mmkeras.preprocessing.image`; this file declares the options and shapes.
"""

import numpy as np

from mmkeras.codecs import encode_png
from mmkeras.layers import ImageAugmentation
from mmkeras.modalities.base import MODALITIES, Modality
from mmkeras.registry import constructor_options

IMAGE_DEFAULTS = {"height": 32, "width": 32, "channels": 3, "resize": "crop", "normalize": "unit"}
RESIZE_MODES = ("crop", "plain", "pad")
# "efficientnet_lite": (pixel - 127) / 128, the scaling EfficientNet-Lite's weights were trained with.
NORMALIZE_MODES = ("unit", "minus_one_one", "imagenet", "efficientnet_lite", None)
# Each named mode as keras-hub's image converters write it: pixels in [0, 255] * scale + offset.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZE_AFFINE = {
    "unit": ((1 / 255,), (0.0,)),
    "minus_one_one": ((1 / 127.5,), (-1.0,)),
    "efficientnet_lite": ((1 / 128,), (-127 / 128,)),
    "imagenet": (tuple(1 / (255 * s) for s in IMAGENET_STD),
                 tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))),
    None: ((1.0,), (0.0,)),
}


def check_normalize(value, channels=3):
    """Returns ``value`` if it is a named mode or ``{"scale": ..., "offset": ...}``; else a ValueError.

    The dict form is keras-hub's image-converter rule, ``pixel * scale + offset`` on
    pixels in [0, 255]; ``scale`` and ``offset`` are numbers or one number per channel.

    Example:
    ```python
    check_normalize({"scale": [1 / 58.4, 1 / 57.1, 1 / 57.4], "offset": [-2.12, -2.04, -1.80]})
    ```
    """
    if not isinstance(value, dict):
        if value not in NORMALIZE_MODES:
            raise ValueError(f"image normalize must be one of {NORMALIZE_MODES} or {{'scale': number or "
                             f"per-channel list, 'offset': ...}}, got {value!r}")
        return value
    if set(value) - {"scale", "offset"} or "scale" not in value:
        raise ValueError(f"image normalize as a dict takes 'scale' and optionally 'offset' (pixel * scale + "
                         f"offset, pixels in [0, 255]), got keys {sorted(value)}")
    for key in ("scale", "offset"):
        v = value.get(key, 0.0)
        values = v if isinstance(v, (list, tuple)) else [v]
        if (len(values) not in (1, channels) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                       and np.isfinite(x) for x in values)):
            raise ValueError(f"image normalize {key} must be a finite number or {channels} of them (one per "
                             f"channel), got {v!r}")
    return value


def normalize_mode(scale, offset, channels=3):
    """The normalize option for ``pixel * scale + offset``: a named mode where one matches, else the dict.

    Example:
    ```python
    normalize_mode(1 / 127.5, -1.0)  # "minus_one_one"
    ```
    """
    def vector(v, default):
        v = default if v is None else v
        return np.broadcast_to(np.asarray(v, "float64").reshape(-1), (channels,))

    scale_v, offset_v = vector(scale, 1.0), vector(offset, 0.0)
    for mode, (s, o) in NORMALIZE_AFFINE.items():
        if mode == "imagenet" and channels != 3:
            continue
        if np.allclose(scale_v, vector(s, 1.0), rtol=1e-4) and np.allclose(offset_v, vector(o, 0.0), atol=1e-4):
            return mode
    as_list = lambda v: [float(x) for x in v] if len(set(v.tolist())) > 1 else float(v[0])  # noqa: E731
    return {"scale": as_list(scale_v), "offset": as_list(offset_v)}


@MODALITIES.register("image")
class ImageModality(Modality):
    """PNG, JPEG, BMP or GIF images resized to ``height x width x channels``."""

    description = "encoded image bytes (PNG, JPEG, BMP or GIF), b'' when absent"
    serving_expects = "PNG, JPEG, BMP or GIF file bytes"
    reads_files = True
    order = 0
    defaults = IMAGE_DEFAULTS
    augment_options = frozenset(constructor_options(ImageAugmentation))

    def check(self, config):
        if config["resize"] not in RESIZE_MODES:
            raise ValueError(f"image resize must be one of {RESIZE_MODES}, got {config['resize']!r}")
        if config["channels"] not in (1, 3, 4):
            raise ValueError(f"image channels must be 1, 3 or 4, got {config['channels']!r}")
        check_normalize(config["normalize"], config["channels"])
        for key in ("height", "width"):
            if not isinstance(config[key], int) or config[key] < 1:
                raise ValueError(f"image {key} must be a positive integer, got {config[key]!r}")
        return config

    def feature_specs(self, config):
        return {self.name: ((config["height"], config["width"], config["channels"]), "float32")}

    def augmentation(self, options, config, name):
        return ImageAugmentation(**options, name=name) if options else None

    def preprocess_batch(self, values, config, state, guard=True):
        from mmkeras.preprocessing import image as image_ops

        feat, present = image_ops.image_features_batch(values, **config, name=self.name, guard=guard)
        return {self.name: feat}, present

    def example(self, config):
        return encode_png(self._pixels(config))

    def examples(self, config):
        import tensorflow as tf  # JPEG decoding takes another branch of the graph: warm it too

        return [self.example(config), tf.io.encode_jpeg(self._pixels(config)).numpy()]

    @staticmethod
    def _pixels(config):
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (config["height"], config["width"], 3), dtype=np.uint8)
