"""The optimizer a preset's ``training`` section names, built the same way everywhere.

``training["optimizer"]`` is any Keras optimizer identifier (``"adamw"``, ``"adam"``,
``"sgd"``, ``"rmsprop"``, ...) or a Keras optimizer config dict (``{"class_name":
"SGD", "config": {"momentum": 0.9}}``). ``learning_rate``, ``weight_decay`` and
``clipnorm`` from the same section fill in what the config leaves out.
"""

import keras

_SHARED = ("learning_rate", "weight_decay", "clipnorm")


def _optimizer_class(identifier):
    name = identifier if isinstance(identifier, str) else (identifier or {}).get("class_name")
    if not isinstance(name, str):
        raise ValueError(f"training.optimizer must be a Keras optimizer name or a config dict with 'class_name', "
                         f"got {identifier!r}")
    try:
        return type(keras.optimizers.get(name))
    except ValueError:
        known = sorted(n.lower() for n in dir(keras.optimizers) if n[0].isupper() and _resolves(n.lower()))
        raise ValueError(f"training.optimizer {name!r} is not a Keras optimizer; known: {known}") from None


def _resolves(name):
    try:
        keras.optimizers.get(name)
        return True
    except Exception:  # optimizers that need arguments (loss scaling, multi-optimizers) are not presets' choice
        return False


def check_optimizer(training):
    """Raises a ValueError when ``training["optimizer"]`` cannot be built (called when a preset is resolved)."""
    build_optimizer(training)


def build_optimizer(training):
    """Returns a new optimizer from a resolved ``training`` section.

    Example:
    ```python
    opt = build_optimizer({"optimizer": "sgd", "learning_rate": 0.1, "weight_decay": None, "clipnorm": None})
    ```
    """
    identifier = training["optimizer"]
    cls = _optimizer_class(identifier)
    config = dict(identifier.get("config") or {}) if isinstance(identifier, dict) else {}
    for key in _SHARED:
        if key not in config and training.get(key) is not None:
            config[key] = training[key]
    try:
        return cls.from_config(config) if isinstance(identifier, dict) else cls(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"training.optimizer {cls.__name__}: {err}") from None
