"""mmkeras: multimodal deep learning (images, audio, text) on Keras 3 and TensorFlow.

``import mmkeras`` loads the backend-agnostic model core only (towers, fusion,
heads, backbone, tasks, presets, modalities), so models build and train on
feature tensors under JAX where TensorFlow is not installed. The TensorFlow parts
(raw-input pipelines, export, callbacks, datasets, distribute, evaluation) load on
first use and name TensorFlow in their error when it is missing.

Example:
```python
import mmkeras
model = mmkeras.build_model("image_audio_text_small", num_classes=10)
(x_train, y_train), (x_test, y_test) = mmkeras.datasets.synthetic(num_classes=10)
model.fit(x_train, y_train, validation_split=0.1, epochs=3)
mmkeras.export_saved_model(model, "saved_models/demo")
```
"""

import importlib

from mmkeras import codecs, fusion, heads, layers, modalities, presets, towers, weights  # noqa: E402
from mmkeras.models import (  # noqa: E402
    ContrastiveModel,
    MultimodalBackbone,
    MultimodalClassifier,
    MultimodalModel,
    MultimodalVAE,
    Task,
)
from mmkeras.presets import build_model, get_preset, list_presets, register_preset  # noqa: E402
from mmkeras.training.mixed_precision import set_mixed_precision  # noqa: E402
from mmkeras.version import __version__ as __version__  # noqa: E402

# Loaded on first use: they need TensorFlow.
_LAZY_MODULES = ("callbacks", "data", "datasets", "distribute", "evaluation", "export", "preprocessing", "serving")
_LAZY_ATTRIBUTES = {
    "export_saved_model": "export", "inspect_export": "export",
    "evaluate_robustness": "evaluation", "cross_modal_recall": "evaluation", "retrieval_recall": "evaluation",
    "explain": "evaluation",
}


def __getattr__(name):
    if name in _LAZY_MODULES or name in _LAZY_ATTRIBUTES:
        module_name = f"mmkeras.{_LAZY_ATTRIBUTES.get(name, name)}"
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            from mmkeras.utils.tensorflow import require_tensorflow, tensorflow_available

            if not tensorflow_available():
                require_tensorflow(module_name)
            raise err
        return module if name in _LAZY_MODULES else getattr(module, name)
    raise AttributeError(f"module 'mmkeras' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_ATTRIBUTES))


__all__ = [
    "ContrastiveModel", "MultimodalBackbone", "MultimodalClassifier", "MultimodalModel", "MultimodalVAE", "Task",
    "build_model", "callbacks", "codecs", "cross_modal_recall", "data", "datasets", "distribute", "evaluate_robustness",
    "evaluation", "explain",
    "export", "export_saved_model", "fusion", "get_preset", "heads", "inspect_export", "layers", "list_presets",
    "modalities", "presets", "register_preset", "retrieval_recall", "serving", "set_mixed_precision", "towers",
    "weights",
]
