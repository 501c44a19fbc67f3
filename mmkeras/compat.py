"""Every compatibility path of mmkeras, in one place.

mmkeras is a 0.x package, but ``.keras`` files and code written against an earlier
release keep working. Each old name, old option, old module path or old config
layout that is still honoured is listed here, next to what it now means; the rest
of the library carries no shim, only a call into this module where a path is
taken. This module imports nothing from mmkeras (it sits at the bottom of the
import layers, ``.importlinter``), so any layer may ask it.

- class ``MultimodalModel`` (and ``"mmkeras>MultimodalModel"`` in ``.keras`` files) now means
  ``MultimodalClassifier``: :data:`RENAMED_CLASSES`, bound by :func:`renamed_class` in ``mmkeras.models``.
- a ``MultimodalVAE`` config saved without ``encoder_input``/``cross_decoder_gradient`` was built with
  :data:`LEGACY_VAE_OPTIONS`: :func:`legacy_vae_config` in ``MultimodalVAE.from_config``.
"""

# What a saved MultimodalVAE config without these options (mmkeras before they existed) was built
# with; the current defaults differ ("sequence", False), so a missing key cannot take the default.
LEGACY_VAE_OPTIONS = {"encoder_input": "pooled", "cross_decoder_gradient": True}

# Old class name -> current class name (Keras package "mmkeras"). Files saved before the
# backbone/task split name the classifier "mmkeras>MultimodalModel".
RENAMED_CLASSES = {"MultimodalModel": "MultimodalClassifier"}

# Old module path -> where its contents live now (the request limits need no TensorFlow).
MOVED_MODULES = {"mmkeras.preprocessing.limits": "mmkeras.modalities.limits"}



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


def renamed_class(old_name, cls):
    """Registers ``cls`` under its old Keras name ``"mmkeras>" + old_name`` and returns it.

    Args:
        old_name: str. A key of :data:`RENAMED_CLASSES`.
        cls: the class that name now means (its ``__name__`` is the table's value).

    Returns:
        ``cls``, so the old Python name can be bound to it.

    Example:
    ```python
    MultimodalModel = renamed_class("MultimodalModel", MultimodalClassifier)
    ```
    """
    if RENAMED_CLASSES.get(old_name) != cls.__name__:
        raise ValueError(f"{old_name!r} is not an old name of {cls.__name__} (see mmkeras.compat.RENAMED_CLASSES)")
    import keras

    keras.saving.get_custom_objects()[f"mmkeras>{old_name}"] = cls
    return cls
