"""mmkeras: multimodal deep learning (images, audio, text) on Keras 3 and TensorFlow.

Example:
```python
import mmkeras
model = mmkeras.build_model("image_audio_text_small", num_classes=10)
(x_train, y_train), (x_test, y_test) = mmkeras.datasets.synthetic(num_classes=10)
model.fit(x_train, y_train, validation_split=0.1, epochs=3)
mmkeras.export_saved_model(model, "saved_models/demo")
```
"""

__version__ = "0.1.0"

from mmkeras import callbacks, data, datasets, distribute, evaluation, fusion, heads, layers, towers, weights  # noqa: E402
from mmkeras.evaluation import cross_modal_recall, evaluate_robustness, retrieval_recall  # noqa: E402
from mmkeras.export import export_saved_model, inspect_export  # noqa: E402
from mmkeras.models import ContrastiveModel, MultimodalModel  # noqa: E402
from mmkeras.presets import build_model, get_preset, list_presets, register_preset  # noqa: E402
from mmkeras.training.mixed_precision import set_mixed_precision  # noqa: E402

__all__ = [
    "ContrastiveModel", "MultimodalModel", "build_model", "callbacks", "cross_modal_recall", "data", "datasets",
    "distribute", "evaluate_robustness", "evaluation", "export_saved_model", "fusion", "get_preset", "heads",
    "inspect_export", "layers", "list_presets", "register_preset", "retrieval_recall", "set_mixed_precision",
    "towers", "weights",
]
