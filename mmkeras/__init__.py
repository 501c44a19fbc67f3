"""mmkeras: multimodal deep learning (images, audio, text) on Keras 3 and TensorFlow.

``import mmkeras`` itself imports neither Keras nor TensorFlow (so ``mmkeras
--help`` answers at once). The model core (towers, fusion, heads, backbone,
tasks, presets, modalities) loads on first attribute access, or as soon as Keras
is imported, so ``import mmkeras; keras.saving.load_model("m.keras")`` finds the
mmkeras classes. It is backend-agnostic: models build and train on feature
tensors under JAX where TensorFlow is not installed. The TensorFlow parts
(raw-input pipelines, export, callbacks, datasets, distribute, evaluation) load
on first use and name TensorFlow in their error when it is missing.

Example:
```python
import mmkeras
model = mmkeras.build_model("image_audio_text_small", num_classes=10)
(x_train, y_train), (x_test, y_test) = mmkeras.datasets.synthetic(num_classes=10)
model.fit(x_train, y_train, validation_split=0.1, epochs=3)
mmkeras.export_saved_model(model, "saved_models/demo")
```
"""

import contextlib
import importlib
import sys

from mmkeras.compat import install_moved_modules
from mmkeras.version import __version__ as __version__

install_moved_modules()  # old module paths (mmkeras.compat.MOVED_MODULES) still import

# The model core: imported (and its Keras classes registered) together, once.
_CORE_MODULES = ("codecs", "fusion", "heads", "layers", "modalities", "presets", "towers", "weights", "models")
_CORE_ATTRIBUTES = {
    "ContrastiveModel": "models", "MultimodalBackbone": "models", "MultimodalClassifier": "models",
    "MultimodalModel": "models", "MultimodalVAE": "models", "Task": "models",
    "build_model": "presets", "get_preset": "presets", "list_presets": "presets", "register_preset": "presets",
    "set_mixed_precision": "training.mixed_precision",
}
# Loaded on first use: they need TensorFlow.
_LAZY_MODULES = ("callbacks", "data", "datasets", "distribute", "evaluation", "export", "preprocessing", "serving")
_LAZY_ATTRIBUTES = {
    "export_saved_model": "export", "inspect_export": "export",
    "evaluate_robustness": "evaluation", "cross_modal_recall": "evaluation", "retrieval_recall": "evaluation",
    "explain": "evaluation",
}


def _load_core():
    for name in _CORE_MODULES:
        importlib.import_module(f"mmkeras.{name}")


def _import(module_name):
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        from mmkeras.utils.tensorflow import require_tensorflow, tensorflow_available

        if not tensorflow_available():
            require_tensorflow(module_name)
        raise err


def __getattr__(name):
    if name in _CORE_MODULES or name in _CORE_ATTRIBUTES:
        _load_core()
        module = importlib.import_module(f"mmkeras.{_CORE_ATTRIBUTES.get(name, name)}")
        return module if name in _CORE_MODULES else getattr(module, name)
    if name in _LAZY_MODULES or name in _LAZY_ATTRIBUTES:
        module = _import(f"mmkeras.{_LAZY_ATTRIBUTES.get(name, name)}")
        return module if name in _LAZY_MODULES else getattr(module, name)
    raise AttributeError(f"module 'mmkeras' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_CORE_MODULES) | set(_CORE_ATTRIBUTES) | set(_LAZY_MODULES)
                  | set(_LAZY_ATTRIBUTES))


class _AfterKerasImport:
    """A meta-path finder that loads the model core right after ``import keras`` completes.

    Keras finds a ``.keras`` file's mmkeras classes only once they are registered,
    and ``import mmkeras`` no longer registers them itself (it would import Keras,
    and with it TensorFlow, in every process, the command line's ``--help`` too).
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from finding this finder
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_load_core(module):
            exec_module(module)
            sys.modules[fullname] = module
            with contextlib.suppress(Exception):  # a broken core must not break `import keras`; it fails on use
                _load_core()

        spec.loader.exec_module = exec_then_load_core
        return spec


if "keras" in sys.modules:
    _load_core()
elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
    import importlib.util  # noqa: E402  (find_spec above)

    sys.meta_path.insert(0, _AfterKerasImport())

__all__ = [
    "ContrastiveModel", "MultimodalBackbone", "MultimodalClassifier", "MultimodalModel", "MultimodalVAE", "Task",
    "build_model", "callbacks", "codecs", "cross_modal_recall", "data", "datasets", "distribute", "evaluate_robustness",
    "evaluation", "explain",
    "export", "export_saved_model", "fusion", "get_preset", "heads", "inspect_export", "layers", "list_presets",
    "modalities", "presets", "register_preset", "retrieval_recall", "serving", "set_mixed_precision", "towers",
    "weights",
]
