"""A multimodal variational autoencoder: one joint latent space for any subset of modalities.

``MultimodalVAE`` is a generative sibling of the classifier and the contrastive
model over the same backbone (without a fusion block), after MVAE (Wu & Goodman,
NeurIPS 2018):

- each modality's pooled tower vector -> a Gaussian expert ``q(z | x_m)``
  (:class:`~mmkeras.layers.GaussianEncoder`);
- the joint posterior is the product of the present modalities' experts and a
  ``N(0, I)`` prior expert (:class:`~mmkeras.layers.ProductOfExperts`), so any
  subset of modalities (``present`` = 0 for the rest) gives a posterior;
- a reparameterised sample -> one :class:`~mmkeras.layers.FeatureDecoder` per
  float feature (image pixels, audio log-mel frames). Text (integer token ids)
  is encoded into the latent but not decoded.

The experts of decoded modalities read the tower's token sequence flattened
(``encoder_input: "sequence"``, the default) rather than its mean-pooled vector:
pooling keeps what is in an image but not where, and the decoder must put it back.

With ``private_dim`` > 0 each decoded modality also gets a private Gaussian latent
``w_m`` (its own encoder from the same tower vector, prior ``N(0, I)``): the decoder
reads ``[z, w_m]``, so the shared ``z`` must carry what the modalities share
(MMVAE+, Palumbo et al., ICLR 2023). Generation decodes the prior mean ``w_m = 0``
(a typical style) or a prior sample; an absent modality's ``w_m`` is 0. Off by
default: it needs a constraint this class does not yet have.

This module builds the graph; the jobs around it live beside it:
:mod:`~mmkeras.models.vae_config` (the ``vae`` section: defaults, checks, what a
config implies), :mod:`~mmkeras.models.vae_objective` (the subset-sampled ELBO,
KL annealing), :mod:`~mmkeras.models.vae_statistics` (``adapt``/``fit``: the
decoders' feature statistics) and :mod:`~mmkeras.models.vae_inference`
(``embed``, ``reconstruct``, ``generate``, ``decode``). What each design choice
measured on AV-digits is in benchmarks/README.md ("AV-digits: multimodal VAE").
"""

import keras
from keras import ops

from mmkeras.compat import legacy_vae_config
from mmkeras.layers import FeatureDecoder, GaussianEncoder, GaussianSample, ProductOfExperts
from mmkeras.models.multimodal_backbone import MultimodalBackbone
from mmkeras.models.task import Task
from mmkeras.models.vae_config import decodable_modalities, expert_inputs, likelihood, resolve_vae_config, subset_list
from mmkeras.models.vae_inference import VAEInference
from mmkeras.models.vae_objective import VAEObjective
from mmkeras.models.vae_statistics import VAEStatistics
from mmkeras.training.mixed_precision import dtype_policy_scope
from mmkeras.utils.safe_loading import budgeted_build


@keras.saving.register_keras_serializable(package="mmkeras")
class MultimodalVAE(VAEInference, VAEStatistics, VAEObjective, Task):
    """Per-modality Gaussian experts, product of experts, per-modality decoders (MVAE).

    Outputs ``{"embedding": [B, Z], "log_var": [B, Z]}`` (the joint posterior of the
    present modalities), each modality's expert ``"<m>_mean"``/``"<m>_log_var"``,
    and for decoded modalities ``"<m>_reconstruction"`` (in feature space: pixels
    in [0, 1], log-mel values) plus ``"<m>_logits"`` for Bernoulli ones. In
    training the decoders read a reparameterised sample, otherwise the mean.
    Trained without labels; the exported SavedModel answers ``embed``.

    Args:
        config: dict. A preset with a ``vae`` section: ``latent_dim``,
            ``hidden_units`` (encoder hidden layer), ``decoder_filters``,
            ``kernel_size``, ``beta`` (final KL weight), ``kl_anneal_steps``,
            ``subsets`` (``"mvae"`` or ``"all"``), ``cross_reconstruction``,
            ``gaussian_sigma``, ``reconstruction_weights`` (``{modality: weight}``),
            ``private_dim`` (modality-specific latents, 0: none), ``encoder_input``
            (``"sequence"``: decoded modalities' experts read the flattened token
            sequence; ``"pooled"``: the pooled vector), ``cross_decoder_gradient``
            (cross terms also train the decoder).
        preprocessor: bool or ``"auto"``. Build the raw-input preprocessor (TensorFlow).

    Example:
    ```python
    import numpy as np

    (x, _), _ = mmkeras.datasets.synthetic(num_train=512, num_test=0, modalities=("image", "audio"))
    pngs, wavs = x["image"], x["audio"]  # PNG and WAV bytes
    model = mmkeras.build_model("image_audio_vae_small")
    model.fit({"image": pngs, "audio": wavs}, epochs=10)          # no labels
    z = model.embed({"image": pngs, "audio": wavs})["embedding"]  # [N, 32]
    images = model.generate({"image": [b""] * len(wavs), "audio": wavs}, target="image")
    ```

    The method examples below continue this one (tests/test_docs.py runs them all).
    """

    def __init__(self, config, preprocessor="auto", **kwargs):
        config = resolve_vae_config(config)
        config["mixed_precision"] = config["mixed_precision"] or keras.config.dtype_policy().name
        vae = config["vae"]
        budget = budgeted_build(f"model {config['name']!r}", config)  # safe-mode loads: bounded
        with dtype_policy_scope(config["mixed_precision"]), budget as measure:
            backbone = MultimodalBackbone(config)
            measure.measure(backbone)
            modalities = backbone.modalities
            present = backbone.input["present"]
            encoded = expert_inputs(config, backbone.output, lambda m: keras.layers.Flatten(name=f"{m}_flatten"))
            experts = [GaussianEncoder(vae["latent_dim"], vae["hidden_units"], name=f"{m}_encoder")(encoded[m])
                       for m in modalities]
            means, log_vars = [e[0] for e in experts], [e[1] for e in experts]
            mean, log_var = ProductOfExperts(name="product_of_experts")(means, log_vars, present)
            z = GaussianSample(seed=config["seed"], name="sample")(mean, log_var)
            outputs = {"embedding": mean, "log_var": log_var}
            for m, e_mean, e_log_var in zip(modalities, means, log_vars):
                outputs[f"{m}_mean"], outputs[f"{m}_log_var"] = e_mean, e_log_var
            for i, m in enumerate(decodable_modalities(config)):
                bernoulli = likelihood(config["modalities"][m]) == "bernoulli"
                decoder_input = z
                if vae["private_dim"]:
                    w_mean, w_log_var = GaussianEncoder(vae["private_dim"], vae["hidden_units"],
                                                        name=f"{m}_private_encoder")(encoded[m])
                    outputs[f"{m}_private_mean"], outputs[f"{m}_private_log_var"] = w_mean, w_log_var
                    seed = None if config["seed"] is None else config["seed"] + 1 + i
                    w = GaussianSample(seed=seed, name=f"{m}_private_sample")(w_mean, w_log_var)
                    w = w * ops.cast(present[:, modalities.index(m):modalities.index(m) + 1], "float32")
                    decoder_input = keras.layers.Concatenate(name=f"{m}_decoder_input")([z, w])
                decoded = FeatureDecoder(tuple(backbone.input[m].shape[1:]), vae["decoder_filters"],
                                         vae["kernel_size"], standardize=not bernoulli,
                                         name=f"{m}_decoder")(decoder_input)
                if bernoulli:
                    outputs[f"{m}_logits"] = decoded
                    decoded = keras.layers.Activation("sigmoid", dtype="float32", name=f"{m}_probabilities")(decoded)
                outputs[f"{m}_reconstruction"] = decoded
        with dtype_policy_scope(config["mixed_precision"]):
            super().__init__(backbone, outputs, config, preprocessor=preprocessor, **kwargs)
        self.decoded = decodable_modalities(config)
        self.subsets = subset_list(len(self.modalities), vae["subsets"])
        # Training steps seen by the loss (the KL annealing's clock): a weight, so it is saved.
        self.kl_step = self.add_weight(name="kl_step", shape=(), initializer="zeros", trainable=False,
                                       dtype="float32")
        self.term_trackers = [keras.metrics.Mean(name="kl")] + [
            keras.metrics.Mean(name=f"{m}_nll") for m in self.decoded]
        if vae["private_dim"]:
            self.term_trackers.append(keras.metrics.Mean(name="private_kl"))

    @property
    def heads(self):
        return []  # no labelled heads: serving answers the joint latent

    @classmethod
    def from_config(cls, config):
        # A .keras file written before an option existed was built without it.
        return super().from_config(legacy_vae_config(config))

    def compile(self, optimizer="auto", jit_compile="auto", **kwargs):
        """Compiles with the preset's ``training`` optimizer; the loss is the subset-sampled ELBO."""
        self.compile_own_loss(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
