"""The image modality: encoded image bytes -> ``[H, W, C]`` float pixels.

Decoding, resizing and normalisation are graph code in
:mod:`mmkeras.preprocessing.image`; this file declares the options and shapes.
"""

import numpy as np

from mmkeras.codecs import encode_png
from mmkeras.layers import ImageAugmentation
from mmkeras.modalities.base import MODALITIES, Modality
from mmkeras.modalities.features import RESIZE_MODES, check_normalize
from mmkeras.modalities.limits import IMAGE_LIMIT_DOCS, IMAGE_LIMITS
from mmkeras.registry import constructor_options

IMAGE_DEFAULTS = {"height": 32, "width": 32, "channels": 3, "resize": "crop", "normalize": "unit"}


@MODALITIES.register("image")
class ImageModality(Modality):
    """PNG, JPEG, BMP or GIF images resized to ``height x width x channels``."""

    description = "encoded image bytes (PNG, JPEG, BMP or GIF), b'' when absent"
    serving_expects = "PNG, JPEG, BMP or GIF file bytes"
    reads_files = True
    order = 0
    defaults = IMAGE_DEFAULTS
    augment_options = frozenset(constructor_options(ImageAugmentation))
    limits, limit_docs = IMAGE_LIMITS, IMAGE_LIMIT_DOCS
    file_signatures = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
                       (b"GIF89a", "GIF"), (b"BM", "BMP"))
    file_expected = "a PNG, JPEG, BMP or GIF image"
    file_noun = "an image"

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

    def file_problem(self, head, tail):
        if head.startswith(b"\x89PNG") and b"IEND" not in tail[-12:]:
            return "looks truncated: a PNG must end with an IEND chunk"
        if head.startswith(b"\xff\xd8\xff") and b"\xff\xd9" not in tail:
            return "looks truncated: a JPEG must end with an EOI marker (FF D9)"
        return None

    def example(self, config):
        return encode_png(self._pixels(config))

    def examples(self, config):
        import tensorflow as tf  # JPEG decoding takes another branch of the graph: warm it too

        return [self.example(config), tf.io.encode_jpeg(self._pixels(config)).numpy()]

    # ---- evaluation ---------------------------------------------------------------------------

    corruption = "gaussian_noise_std"
    corruption_severities = (0.2, 0.4, 0.6)

    def corrupt_value(self, value, severity, rng):
        """Adds ``N(0, severity)`` to pixels scaled to [0, 1], clips, re-encodes as PNG."""
        import tensorflow as tf

        pixels = tf.io.decode_image(value, expand_animations=False).numpy()  # keeps the channel count
        noisy = np.clip(pixels / 255.0 + rng.normal(0.0, severity, pixels.shape), 0.0, 1.0)
        return encode_png(np.rint(noisy * 255.0).astype(np.uint8))

    def explanation_panels(self, feature, attribution, names=None):
        """The image as the model sees it and its integrated gradients summed over channels."""
        img = np.asarray(feature, "float32")
        return [{"kind": "picture", "name": self.name, "title": f"{self.name} (as the model sees it)",
                 "values": img[..., 0] if img.shape[-1] == 1 else np.clip(img, 0, 1)},
                {"kind": "signed_map", "name": f"{self.name}: integrated gradients", "axis": False,
                 "title": f"{self.name}: integrated gradients", "values": np.sum(attribution, axis=-1)}]

    @staticmethod
    def _pixels(config):
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (config["height"], config["width"], 3), dtype=np.uint8)
