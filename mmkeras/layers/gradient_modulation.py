"""Gradient modulation (OGM): each modality's tower gets its fused-loss gradient scaled by its own coefficient."""

import keras
from keras import ops


def scale_gradient(x, k):
    """``x`` forward, ``k * gradient`` backward: ``stop_gradient(x) + k * (x - stop_gradient(x))``.

    Backend-agnostic (``keras.ops`` only). ``k`` is not differentiated through.

    Example:
    ```python
    y = scale_gradient(x, 0.5)  # y == x; d loss / dx is half of d loss / dy
    ```
    """
    frozen = ops.stop_gradient(x)
    return frozen + ops.cast(ops.stop_gradient(k), x.dtype) * (x - frozen)


@keras.saving.register_keras_serializable(package="mmkeras")
class GradientModulation(keras.layers.Layer):
    """Training only: scales the gradient reaching each modality's tower output by a coefficient ``k_m``.

    Holds ``coefficients`` ``[M]``, a non-trainable float32 variable (1 at the
    start: no modulation), and applies :func:`scale_gradient` to every floating
    tensor of modality ``m``'s tower output dict (``pooled``, ``sequence``).
    Forward values are unchanged, in training as in inference; outside training
    the outputs are the inputs. Whoever owns the layer sets the coefficients (a
    classifier with ``gradient_modulation`` sets them from its unimodal heads'
    scores at every training step).

    Args:
        num_modalities: int. How many tower outputs the layer takes (in modality order).

    Example:
    ```python
    modulation = GradientModulation(2)
    image_out, audio_out = modulation([image_out, audio_out], training=True)
    modulation.coefficients.assign([0.6, 1.0])  # the image tower's fused-path gradient is scaled by 0.6
    ```
    """

    def __init__(self, num_modalities, **kwargs):
        super().__init__(**kwargs)
        self.num_modalities = num_modalities
        self.supports_masking = False

    def build(self, tower_outputs_shape=None, **call_named):
        del tower_outputs_shape, call_named  # one coefficient per modality, whatever the shapes
        self.coefficients = self.add_weight(name="coefficients", shape=(self.num_modalities,), initializer="ones",
                                            trainable=False, dtype="float32")

    def call(self, tower_outputs, training=None):
        if len(tower_outputs) != self.num_modalities:
            raise ValueError(f"GradientModulation({self.num_modalities}) got {len(tower_outputs)} tower outputs")
        if not training:
            return list(tower_outputs)
        return [keras.tree.map_structure(
            lambda x, k=self.coefficients[i]: scale_gradient(x, k) if _floating(x) else x, out)
            for i, out in enumerate(tower_outputs)]

    def compute_mask(self, *args, **kwargs):
        return None

    def compute_output_spec(self, tower_outputs, training=None):
        return [keras.tree.map_structure(lambda x: keras.KerasTensor(x.shape, dtype=x.dtype), out)
                for out in tower_outputs]

    def get_config(self):
        return {**super().get_config(), "num_modalities": self.num_modalities}


def _floating(x):
    return "float" in str(keras.backend.standardize_dtype(x.dtype))
