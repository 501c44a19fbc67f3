"""BatchNormalization whose moving statistics are right from the first training steps."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras ``BatchNormalization`` with warm-started (bias-corrected) moving statistics.

    Keras starts the moving mean and variance at 0 and 1 and moves them by
    ``1 - momentum`` per step, so until the initial values have decayed (about
    ``5 / (1 - momentum)`` steps) inference normalises with statistics that are
    partly made up; where a layer's true variance is far from 1 (a conv on
    [0, 1] pixels, on log-mel features) a model trained for a few dozen steps
    predicts at chance in inference mode. Here the ``k``-th training step uses
    ``min(momentum, 1 - 1/k)``: the moving statistics are the plain average of
    the batch statistics seen so far until ``k`` reaches ``1 / (1 - momentum)``,
    then the usual exponential moving average. The initial values never count.

    It keeps Keras' class name so that weights saved from plain Keras
    ``BatchNormalization`` layers (conv towers of earlier mmkeras versions) load
    into it; their statistics count as settled.

    Args:
        momentum: float. Momentum of the moving average once warmed up.
        **kwargs: as for ``keras.layers.BatchNormalization`` (``renorm`` is not
            supported).

    Example:
    ```python
    bn = BatchNormalization(momentum=0.9)
    y = bn(x, training=True)  # after one step, bn.moving_mean equals x's batch mean
    ```
    """

    def __init__(self, momentum=0.9, **kwargs):
        if kwargs.get("renorm"):
            raise ValueError("mmkeras.layers.BatchNormalization does not support renorm=True")
        super().__init__(momentum=momentum, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.updates_seen = self.add_weight(shape=(), name="updates_seen", initializer="zeros", trainable=False,
                                            autocast=False)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        inputs = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = self._moments(inputs, mask)
        seen = self.updates_seen + 1.0
        momentum = ops.minimum(ops.cast(self.momentum, "float32"), 1.0 - 1.0 / seen)
        self.updates_seen.assign(seen)
        self.moving_mean.assign(self.moving_mean * momentum + ops.cast(mean, "float32") * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum
                                    + ops.cast(variance, "float32") * (1.0 - momentum))
        outputs = ops.batch_normalization(
            x=inputs, mean=mean, variance=variance, axis=self.axis,
            offset=None if self.beta is None else ops.cast(self.beta, inputs.dtype),
            scale=None if self.gamma is None else ops.cast(self.gamma, inputs.dtype),
            epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)

    def load_own_variables(self, store):
        # Weights saved from a plain keras BatchNormalization have no counter:
        # load them as settled statistics.
        if len(store.keys()) == len(self.variables) - 1:
            for i, v in enumerate(self._trainable_variables + self._non_trainable_variables[:-1]):
                v.assign(store[f"{i}"])
            self.updates_seen.assign(1e6)
            return
        super().load_own_variables(store)
