"""Pretrained weights: a registry of named weights resolved offline, their installer, and
readers that turn foreign checkpoint files into numpy arrays without the framework that wrote them.

Example:
```python
from mmkeras import weights
weights.list_weights()                       # {"efficientnet_lite0": "...", "minilm_l6": "..."}
folder = weights.resolve_weights("minilm_l6")  # ValueError with the pip command if not installed
state = weights.load_state_dict(weights.weights_file("efficientnet_lite0"))  # {name: ndarray}
```
"""

from mmkeras.weights.install import install, install_command, requirements_line
from mmkeras.weights.registry import (
    AUDIO_WEIGHTS,
    ENV_VAR,
    WEIGHTS,
    PretrainedWeights,
    get_weights_spec,
    list_weights,
    resolve_weights,
    weights_file,
)
from mmkeras.weights.torch_pickle import RestrictedUnpickler, load_pth, load_state_dict

__all__ = [
    "AUDIO_WEIGHTS", "ENV_VAR", "WEIGHTS", "PretrainedWeights", "RestrictedUnpickler", "get_weights_spec",
    "install", "install_command", "list_weights", "load_pth", "load_state_dict", "requirements_line",
    "resolve_weights", "weights_file",
]
