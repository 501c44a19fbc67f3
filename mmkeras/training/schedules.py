"""Learning-rate schedules a preset's ``training`` section names (``warmup_steps``, ``decay_steps``)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmkeras")
class WarmUpCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``learning_rate``, then constant or a cosine decay to ``alpha * learning_rate``.

    Fine-tuning a pretrained tower with a full learning rate from step 0 can wreck
    its weights before the new head has learnt anything; warm-up avoids that.

    Args:
        learning_rate: float. Peak rate, reached after ``warmup_steps``.
        warmup_steps: int. Steps of the linear ramp (step ``s`` gets ``(s + 1) / warmup_steps``
            of the peak; 0: no warm-up).
        decay_steps: int or None. Steps of the cosine decay after the warm-up (None: constant).
        alpha: float. Final rate as a fraction of the peak.

    Example:
    ```python
    schedule = WarmUpCosine(1e-3, warmup_steps=100, decay_steps=900)
    float(schedule(0)), float(schedule(99)), float(schedule(1000))  # 1e-05, 0.001, 0.0
    ```
    """

    def __init__(self, learning_rate, warmup_steps=0, decay_steps=None, alpha=0.0):
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = None if decay_steps is None else int(decay_steps)
        self.alpha = float(alpha)
        if self.warmup_steps < 0 or (self.decay_steps is not None and self.decay_steps < 1):
            raise ValueError(f"WarmUpCosine needs warmup_steps >= 0 and decay_steps >= 1 or None, got "
                             f"warmup_steps={warmup_steps!r}, decay_steps={decay_steps!r}")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        factor = ops.ones_like(step)
        if self.warmup_steps:
            factor = ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        if self.decay_steps:
            progress = ops.clip((step - self.warmup_steps) / self.decay_steps, 0.0, 1.0)
            factor = factor * (self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + ops.cos(math.pi * progress)))
        return self.learning_rate * factor

    def get_config(self):
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps, "alpha": self.alpha}
