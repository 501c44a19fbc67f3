"""Late fusion by concatenation of the pooled modality vectors."""

import keras
from keras import layers, ops

from mmkeras.fusion.base import FUSIONS, Fusion, concat_width


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/concat")
class ConcatFusion(Fusion):
    """Concatenates pooled vectors (absent ones are their missing embedding) and
    mixes them with one Dense layer.

    Args:
        dim: int. Output width of the mixing layer.
        dropout: float. Dropout on the output.

    Example:
    ```python
    fused = ConcatFusion(num_modalities=2, dim=64)([img_out, aud_out], present)
    ```
    """

    def __init__(self, num_modalities, dim=128, dropout=0.0, **kwargs):
        super().__init__(num_modalities, dim=dim, dropout=dropout, **kwargs)
        self.mix = layers.Dense(dim, activation="relu", dtype=self.dtype_policy, name="mix")

    def build_parts(self, towers_shape):
        self.mix.build((None, concat_width(towers_shape)))

    def fuse(self, towers, present, training=None):
        return self.mix(ops.concatenate([t["pooled"] for t in towers], axis=-1))
