"""A VAE preset's ``vae`` section: defaults, checks, and what a config implies.

What the model graph, the objective and the inference API all read from a config:
which modalities are decoded, with which likelihood, which modality subsets the
ELBO sums over, and what each modality's expert reads.
"""

import itertools

from mmkeras.modalities import feature_specs, modality, ordered
from mmkeras.models.config import resolve_headless

VAE_DEFAULTS = {
    "latent_dim": 32, "hidden_units": 256, "decoder_filters": [64, 32], "kernel_size": 3, "beta": 1.0,
    "kl_anneal_steps": 1000, "subsets": "mvae", "cross_reconstruction": True, "gaussian_sigma": 1.0,
    "reconstruction_weights": {}, "private_dim": 0, "encoder_input": "sequence", "cross_decoder_gradient": False,
}
SUBSETS = ("mvae", "all")
ENCODER_INPUTS = ("sequence", "pooled")


def resolve_vae_config(preset):
    """Fills defaults into a preset with a ``vae`` section and checks it; returns a new dict.

    Raises:
        ValueError: naming the ``vae.<key>`` (or modality) that is wrong and what it must be.

    Example:
    ```python
    config = resolve_vae_config(mmkeras.get_preset("image_audio_vae_small"))
    config["vae"]["kl_anneal_steps"]  # 1000, the default
    ```
    """
    if preset.get("modality_dropout"):
        raise ValueError("a VAE trains on modality subsets itself (vae.subsets); drop 'modality_dropout'")
    config = resolve_headless(preset, "vae", VAE_DEFAULTS, "a VAE", "{'latent_dim': 32, 'beta': 1.0}")
    vae = config["vae"]
    for key, least in (("latent_dim", 1), ("hidden_units", 0), ("kernel_size", 1), ("kl_anneal_steps", 0),
                       ("private_dim", 0)):
        if not isinstance(vae[key], int) or vae[key] < least:
            raise ValueError(f"vae.{key} must be an integer >= {least}, got {vae[key]!r}")
    if not vae["decoder_filters"] or not all(isinstance(f, int) and f > 0 for f in vae["decoder_filters"]):
        raise ValueError(f"vae.decoder_filters must be a non-empty list of positive integers, "
                         f"got {vae['decoder_filters']!r}")
    if vae["encoder_input"] not in ENCODER_INPUTS:
        raise ValueError(f"vae.encoder_input must be one of {ENCODER_INPUTS}, got {vae['encoder_input']!r}")
    if not isinstance(vae["cross_decoder_gradient"], bool):
        raise ValueError(f"vae.cross_decoder_gradient must be true or false, got {vae['cross_decoder_gradient']!r}")
    if vae["subsets"] not in SUBSETS:
        raise ValueError(f"vae.subsets must be one of {SUBSETS}, got {vae['subsets']!r}")
    if not vae["beta"] >= 0 or not vae["gaussian_sigma"] > 0:
        raise ValueError(f"vae.beta must be >= 0 and vae.gaussian_sigma > 0, got {vae['beta']!r}, "
                         f"{vae['gaussian_sigma']!r}")
    for m, spec in config["modalities"].items():
        if modality(m).windows_feature(spec["preprocessing"]):
            raise ValueError(f"a VAE decodes fixed-size features; modality {m!r} uses windows (max_windows): "
                             "set it to None")
    decodable = decodable_modalities(config)
    unknown = set(vae["reconstruction_weights"]) - set(decodable)
    if unknown:
        raise ValueError(f"vae.reconstruction_weights names {sorted(unknown)}; decoded modalities: {decodable}")
    if not decodable:
        raise ValueError(f"a VAE needs a modality it can decode (one with float features, not token ids), got "
                         f"{list(config['modalities'])}")
    return config


def decodable_modalities(config):
    """The modalities whose features a decoder can produce (float features; not text token ids)."""
    specs = feature_specs({m: s["preprocessing"] for m, s in config["modalities"].items()})
    return [m for m in config["modalities"] if specs[m][1].startswith("float")]


def expert_inputs(config, backbone_outputs, flatten):
    """``{modality: what its experts read}`` from the headless backbone's outputs.

    Decoded modalities read their tower's token sequence through ``flatten(m)`` (a
    ``Flatten`` layer) with ``encoder_input: "sequence"``: mean pooling discards
    where in the image (or when in the clip) a feature was, which the decoder must
    put back; the others (text, which is not decoded) read the pooled vector.
    """
    flattened = decodable_modalities(config) if config["vae"]["encoder_input"] == "sequence" else []
    return {m: flatten(m)(backbone_outputs[f"{m}_sequence"]) if m in flattened else backbone_outputs[f"{m}_pooled"]
            for m in ordered(config["modalities"])}


def likelihood(spec):
    """``"bernoulli"`` for features in [0, 1] (images with ``normalize: "unit"``), else ``"gaussian"``."""
    return "bernoulli" if spec["preprocessing"].get("normalize") == "unit" else "gaussian"


def subset_list(num_modalities, how):
    """Index tuples of the modality subsets whose ELBOs are summed; the full set first.

    Example:
    ```python
    subset_list(2, "mvae")  # [(0, 1), (0,), (1,)]: the joint posterior, then each modality alone
    ```
    """
    full = tuple(range(num_modalities))
    if num_modalities == 1:
        return [full]
    if how == "mvae":
        return [full] + [(i,) for i in full]
    return [s for size in range(num_modalities, 0, -1) for s in itertools.combinations(full, size)]
