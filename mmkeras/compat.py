"""Every compatibility path of mmkeras, in one place.

mmkeras is a 0.x package, but ``.keras`` files and code written against an earlier
release keep working. Each old name, old option or old file layout that is still
honoured is listed here, next to what it now means; nothing else in the library
carries a shim. This module imports nothing from mmkeras (it sits at the bottom of
the import layers), so any layer can ask it.

- :data:`LEGACY_VAE_OPTIONS`: the VAE options a config saved before they existed
  was built with (:func:`legacy_vae_config` fills them in when a file loads).
"""

# What a saved MultimodalVAE config without these options (mmkeras before they existed) was built
# with; the current defaults differ ("sequence", False), so a missing key cannot take the default.
LEGACY_VAE_OPTIONS = {"encoder_input": "pooled", "cross_decoder_gradient": True}


def legacy_vae_config(config):
    """Fills :data:`LEGACY_VAE_OPTIONS` into a saved ``MultimodalVAE`` Keras config.

    Args:
        config: dict. What ``MultimodalVAE.get_config()`` wrote: the preset sits under its
            ``"config"`` key, the VAE options under that preset's ``"vae"`` key.

    Returns:
        A new dict whose ``vae`` section has every legacy option, saved values winning; the
        config itself when it has no ``vae`` section.

    Example:
    ```python
    old = {"config": {"vae": {"latent_dim": 8}}}
    assert legacy_vae_config(old)["config"]["vae"]["encoder_input"] == "pooled"
    ```
    """
    vae = config.get("config", {}).get("vae")
    if not isinstance(vae, dict):
        return config
    return {**config, "config": {**config["config"], "vae": {**LEGACY_VAE_OPTIONS, **vae}}}
