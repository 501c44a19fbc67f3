"""Every compatibility path of mmkeras, in one place.

mmkeras is a 0.x package, but ``.keras`` files and code written against an earlier
release keep working. Each old name, old option, old module path or old config
layout that is still honoured is listed here, next to what it now means; the rest
of the library carries no shim, only a call into this module where a path is
taken. This module imports nothing from mmkeras (it sits at the bottom of the
import layers, ``.importlinter``), so any layer may ask it.

- class ``MultimodalModel`` (and ``"mmkeras>MultimodalModel"`` in ``.keras`` files) now means
  ``MultimodalClassifier``: :data:`RENAMED_CLASSES`, bound by :func:`renamed_class` in ``mmkeras.models``.
- module ``mmkeras.preprocessing.limits`` now is ``mmkeras.modalities.limits``: :data:`MOVED_MODULES`,
  importable through :func:`install_moved_modules` (called by ``import mmkeras``).
- a ``MultimodalVAE`` config saved without ``encoder_input``/``cross_decoder_gradient`` was built with
  :data:`LEGACY_VAE_OPTIONS`: :func:`legacy_vae_config` in ``MultimodalVAE.from_config``.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

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


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as a thin module that forwards to the new one (with a warning)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        new = MOVED_MODULES[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        target = importlib.import_module(new)
        module.__dict__.update({k: v for k, v in vars(target).items() if not k.startswith("__")})
        module.__getattr__ = lambda name: getattr(target, name)


def install_moved_modules():
    """Makes every old path of :data:`MOVED_MODULES` importable (once per process).

    Example:
    ```python
    install_moved_modules()
    from mmkeras.preprocessing.limits import resolve_limits  # DeprecationWarning; modalities.limits
    ```
    """
    if not any(isinstance(finder, _MovedModule) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModule())
