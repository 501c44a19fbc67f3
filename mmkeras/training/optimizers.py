"""The optimizer a preset's ``training`` section names, built the same way everywhere.

``training["optimizer"]`` is any Keras optimizer identifier (``"adamw"``, ``"adam"``,
``"sgd"``, ``"rmsprop"``, ...) or a Keras optimizer config dict (``{"class_name":
"SGD", "config": {"momentum": 0.9}}``). ``learning_rate``, ``weight_decay`` and
``clipnorm`` from the same section fill in what the config leaves out;
``warmup_steps``/``decay_steps`` turn the rate into a :class:`WarmUpCosine` schedule.
Per-tower learning rates (``learning_rate_multipliers``) scale the rate each variable
gets inside the optimizer's update (:func:`scale_learning_rates`).
"""

import keras
from keras import ops

from mmkeras.training.schedules import WarmUpCosine

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
    if training.get("warmup_steps") or training.get("decay_steps"):
        config["learning_rate"] = WarmUpCosine(config.get("learning_rate", training["learning_rate"]),
                                               training.get("warmup_steps") or 0, training.get("decay_steps"))
    try:
        return cls.from_config(config) if isinstance(identifier, dict) else cls(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"training.optimizer {cls.__name__}: {err}") from None


class _ScaledUpdateStep:
    """An optimizer's ``update_step`` with the learning rate scaled per variable."""

    def __init__(self, optimizer, scales):
        update_step = optimizer.update_step
        # Scaling again replaces the factors instead of multiplying them.
        self.update_step = update_step.update_step if isinstance(update_step, _ScaledUpdateStep) else update_step
        self.var_key, self.scales = optimizer._var_key, scales

    def __call__(self, gradient, variable, learning_rate):
        scale = self.scales.get(self.var_key(variable))
        if scale is not None:
            learning_rate = ops.multiply(learning_rate, scale)
        return self.update_step(gradient, variable, learning_rate)


class _ScaledWeightDecay:
    """An optimizer's ``_apply_weight_decay`` (``w -= w * wd * lr``) with ``wd`` scaled per variable.

    Keras applies the decay in a backend-specific method (TF merges it into the
    distribution strategy's update), reading the Python float ``weight_decay`` when
    the step is traced; each group of variables sharing a factor is passed to that
    method with ``weight_decay`` set to ``wd * factor`` for the call.
    """

    def __init__(self, optimizer, scales):
        apply = optimizer._apply_weight_decay
        self.apply = apply.apply if isinstance(apply, _ScaledWeightDecay) else apply
        self.optimizer, self.scales = optimizer, scales

    def __call__(self, variables):
        optimizer, base = self.optimizer, self.optimizer.weight_decay
        if base is None or not self.scales:
            return self.apply(variables)
        groups = {}
        for v in variables:
            groups.setdefault(self.scales.get(optimizer._var_key(v), 1.0), []).append(v)
        try:
            for factor, group in groups.items():
                optimizer.weight_decay = base * factor
                self.apply(group)
        finally:
            optimizer.weight_decay = base


def scale_learning_rates(optimizer, variable_scales):
    """Gives groups of variables their own learning rate: the optimizer's rate times a factor.

    Keras 3 optimizers have one rate for all variables. Every built-in one (SGD,
    Adam, AdamW, RMSprop, ...) applies the rate in ``update_step(gradient, variable,
    learning_rate)``, called once per variable under every backend and inside
    ``tf.distribute`` and loss scaling, so the factor is applied there: the update
    of a variable at factor 0.1 is exactly what the same optimizer at a tenth of the
    rate would give (schedules included). Scaling gradients instead would do nothing
    for Adam, which normalises them away. Decoupled weight decay (AdamW's ``lr * wd *
    w``) is scaled by the same factor, so a tower at factor 0 does not move at all.
    The optimizer's config is unchanged: a task re-applies the factors
    from its preset's ``training.learning_rate_multipliers`` whenever it compiles.

    Args:
        optimizer: a Keras optimizer (not yet used by ``fit``, or rebuilt by ``compile``).
        variable_scales: list of ``(variables, factor)``.

    Returns:
        The same optimizer.

    Example:
    ```python
    opt = scale_learning_rates(keras.optimizers.AdamW(1e-3), [(model.get_layer("text_tower").weights, 0.1)])
    ```
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer delegates to its inner one
    scales = {}
    for variables, factor in variable_scales:
        if not (isinstance(factor, (int, float)) and factor >= 0):
            raise ValueError(f"learning-rate factor must be a number >= 0, got {factor!r}")
        scales.update({inner._var_key(v): float(factor) for v in variables})
    inner.update_step = _ScaledUpdateStep(inner, scales)
    inner._apply_weight_decay = _ScaledWeightDecay(inner, scales)
    return optimizer
