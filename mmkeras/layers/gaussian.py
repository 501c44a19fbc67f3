"""Gaussian latents of the multimodal VAE: per-modality encoders, the product of experts, sampling.

Reference: M. Wu, N. Goodman, "Multimodal Generative Models for Scalable
Weakly-Supervised Learning", NeurIPS 2018 (MVAE): each modality's encoder gives a
Gaussian expert ``q(z | x_m)``; the joint posterior of any subset of modalities is
the product of their experts and a prior expert ``N(0, I)``, which is again
Gaussian (precisions add, means are precision-weighted).
"""

import keras
from keras import layers, ops

from mmkeras.layers.shapes import chain
from mmkeras.layers.stateless import StatelessLayer

# exp(+-10) spans variances 4.5e-5 .. 2.2e4: wide enough for any posterior, and
# keeps exp() finite under float16 gradients and in the product of experts.
_LOG_VAR_RANGE = (-10.0, 10.0)


def gaussian_kl(mean, log_var):
    """``KL(N(mean, exp(log_var)) || N(0, I))`` summed over the latent axis: ``[B, Z]`` -> ``[B]``.

    Example:
    ```python
    kl = gaussian_kl(keras.ops.zeros((2, 8)), keras.ops.zeros((2, 8)))  # [0., 0.]
    ```
    """
    mean, log_var = ops.cast(mean, "float32"), ops.cast(log_var, "float32")
    return 0.5 * ops.sum(ops.exp(log_var) + ops.square(mean) - 1.0 - log_var, axis=-1)


@keras.saving.register_keras_serializable(package="mmkeras")
class GaussianEncoder(keras.layers.Layer):
    """A modality's Gaussian expert: pooled vector ``[B, D]`` -> ``(mean, log_var)``, each ``[B, Z]`` float32.

    Args:
        latent_dim: int. Width ``Z`` of the latent space.
        hidden_units: int. Width of the hidden ReLU layer (0: none).

    Example:
    ```python
    mean, log_var = GaussianEncoder(latent_dim=16)(pooled)
    ```
    """

    def __init__(self, latent_dim, hidden_units=128, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.hidden_units = hidden_units
        self.hidden = [layers.Dense(hidden_units, activation="relu", name="hidden")] if hidden_units else []
        # float32 whatever the policy: the latent is exported and enters exp() in the loss.
        self.mean = layers.Dense(latent_dim, dtype="float32", name="mean")
        self.log_var = layers.Dense(latent_dim, dtype="float32", name="log_var")

    def build(self, input_shape):
        shape = chain(self.hidden, input_shape, build=True)
        self.mean.build(shape)
        self.log_var.build(shape)

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.mean(x), ops.clip(self.log_var(x), *_LOG_VAR_RANGE)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.latent_dim), (input_shape[0], self.latent_dim)

    def compute_output_spec(self, x):
        return tuple(keras.KerasTensor(s, dtype="float32") for s in self.compute_output_shape(tuple(x.shape)))

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="mmkeras")
class ProductOfExperts(StatelessLayer):
    """Joint Gaussian posterior of the present modalities' experts and a ``N(0, I)`` prior expert.

    Called on the lists of expert means and log-variances (one ``[B, Z]`` each) and
    ``present`` ``[B, M]``: an absent modality contributes no expert, so any subset
    gives a posterior and none gives the prior. Precision ``T = 1 + sum_m p_m / var_m``,
    mean ``sum_m p_m mean_m / var_m / T``; returns ``(mean, log_var = -log T)`` float32.

    Example:
    ```python
    mean, log_var = ProductOfExperts()([img_mean, aud_mean], [img_log_var, aud_log_var], present)
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = False
        self._build_at_init()

    def call(self, means, log_vars, present):
        present = ops.cast(present, "float32")
        precision = ops.ones_like(ops.cast(means[0], "float32"))  # the prior expert
        weighted = ops.zeros_like(precision)
        for i, (mean, log_var) in enumerate(zip(means, log_vars)):
            t = ops.exp(-ops.cast(log_var, "float32")) * present[:, i:i + 1]
            precision = precision + t
            weighted = weighted + t * ops.cast(mean, "float32")
        return weighted / precision, -ops.log(precision)

    def compute_mask(self, *args, **kwargs):
        return None

    def compute_output_shape(self, means_shape, log_vars_shape=None, present_shape=None):
        return tuple(means_shape[0]), tuple(means_shape[0])

    def compute_output_spec(self, means, log_vars, present):
        return tuple(keras.KerasTensor(tuple(means[0].shape), dtype="float32") for _ in range(2))


@keras.saving.register_keras_serializable(package="mmkeras")
class GaussianSample(StatelessLayer):
    """The reparameterised sample ``mean + exp(log_var / 2) * eps`` in training, the mean otherwise.

    Args:
        seed: int or None. Seed of the noise.

    Example:
    ```python
    z = GaussianSample(seed=0)(mean, log_var, training=True)
    ```
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False
        self._build_at_init()

    def call(self, mean, log_var, training=None):
        mean = ops.cast(mean, "float32")
        if not training:
            return mean
        noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * ops.cast(log_var, "float32")) * noise

    def compute_mask(self, *args, **kwargs):
        return None

    def compute_output_shape(self, mean_shape, log_var_shape=None):
        return tuple(mean_shape)

    def compute_output_spec(self, mean, log_var, training=None):
        return keras.KerasTensor(tuple(mean.shape), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
