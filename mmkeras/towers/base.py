"""The tower contract and registry.

A tower turns one modality's features into ``{"sequence": [B, T, D], "mask": [B, T]
bool, "pooled": [B, D]}``. Late-fusion blocks read ``pooled``; early fusion reads
``sequence`` and ``mask``. Subclasses implement :meth:`Tower.encode` and
:meth:`Tower.encode_shape` (which builds their sub-layers), so every tower meets
Keras's layer contract: ``build()`` creates all weights, ``compute_output_shape``
answers without running the tower, and an incoming Keras mask is either used
(sequence modalities) or declared unsupported (``accepts_mask = False``).
"""

import keras
from keras import ops
from keras.src.backend import set_keras_mask  # no public alias in Keras 3.15

from mmkeras.layers import MaskedMeanPooling
from mmkeras.layers.shapes import sequence_output_spec
from mmkeras.registry import Registry
from mmkeras.utils.safe_loading import UnsafeConfigError, budgeted_build, check_layer_count

TOWERS = Registry("tower")


class Tower(keras.layers.Layer):
    """Base class of all towers.

    Args:
        dim: int. Width D of the sequence and pooled outputs.
        dropout: float. Dropout rate used inside the tower (training only).
    """

    # Whether a Keras mask on the input ([B, T] over time steps) is honoured.
    accepts_mask = True

    def __init__(self, dim=128, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.supports_masking = self.accepts_mask
        self.dropout = dropout
        self.pool = MaskedMeanPooling(dtype=self.dtype_policy, name="pool")

    @classmethod
    def from_config(cls, config):
        # Keras's Operation.from_config turns every constructor error into a TypeError; a config
        # refused under safe mode stays the ValueError that names its option.
        try:
            return super().from_config(config)
        except TypeError as e:
            if isinstance(e.__context__, UnsafeConfigError):
                raise e.__context__ from None
            raise

    def limit_layers(self, key, count):
        """Under safe-mode loading, refuses option ``key`` making ``count`` sub-layers (call before making them)."""
        check_layer_count(f"{self.name!r} tower ({type(self).__name__})", key, count)

    def encode(self, x, mask=None, training=None):
        """Returns ``(sequence [B, T, D], mask [B, T] bool or None)``; ``mask`` is the input's."""
        raise NotImplementedError

    def encode_shape(self, input_shape, build=False):
        """Returns the ``[B, T, D]`` sequence shape; with ``build``, builds every sub-layer."""
        raise NotImplementedError

    def build(self, input_shape):
        # Under safe-mode loading (a tower in any Keras model), nothing is allocated over the budget.
        with budgeted_build(f"{self.name!r} tower ({type(self).__name__})", self.get_config()) as budget:
            self.pool.build(self.encode_shape(tuple(input_shape), build=True))
            budget.measure(self)

    def compute_output_shape(self, input_shape):
        b, t, d = self.encode_shape(tuple(input_shape))
        return {"sequence": (b, t, d), "mask": (b, t), "pooled": (b, d)}

    def compute_output_spec(self, x, mask=None, training=None):
        return sequence_output_spec(self.encode_shape(tuple(x.shape)), self.compute_dtype)

    def compute_mask(self, *args, **kwargs):
        return None  # the output's mask travels in the dict

    def call(self, x, mask=None, training=None):
        sequence, mask = self.encode(x, mask=mask if self.accepts_mask else None, training=training)
        if mask is None:
            mask = ops.ones(ops.shape(sequence)[:2], dtype="bool")
        # Sub-layers that support masking attach their mask to the sequence; the tower's mask
        # travels in the dict instead, so downstream parts never see two of them.
        set_keras_mask(sequence, None)
        return {"sequence": sequence, "mask": mask, "pooled": self.pool(sequence, mask=mask)}

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "dropout": self.dropout}

    # ---- pretrained towers: preprocessing they imply, configs that need no weights files, blocks ----

    @classmethod
    def implied_preprocessing(cls, options):
        """Preprocessing options a tower config implies (a pretrained tower: its vocabulary, image size).

        A preset's own ``preprocessing`` options override these.

        Args:
            options: dict. The tower's preset options (without ``type``).
        """
        return {}

    def portable_config(self, spec):
        """The preset tower ``spec`` with pretrained-weights sources replaced by the architecture alone.

        A task keeps this in its config, so a saved model reloads its own (fine-tuned)
        weights from the archive and never needs the weights package.
        """
        return spec

    def after_trainable_change(self):
        """Called after ``Task.unfreeze`` changed which layers train (re-freezes layers that never train)."""

    def layer_groups(self):
        """The tower's layers in groups, input side first (what ``unfreeze(top_blocks=N)`` counts).

        Pretrained towers list their pretrained layers only; layers they add (a
        projection to ``dim``) are not in a group and stay trainable when frozen.
        """
        return [[self]]


def combine_masks(a, b):
    """Logical and of two optional ``[B, T]`` masks."""
    if a is None or b is None:
        return a if b is None else b
    return ops.logical_and(ops.cast(a, "bool"), ops.cast(b, "bool"))


def build_tower(config, name=None, dtype=None):
    """Builds a tower from ``{"type": "image/cnn", ...kwargs}``.

    Example:
    ```python
    tower = build_tower({"type": "text/transformer", "dim": 64, "vocab_size": 1000})
    ```
    """
    config = dict(config)
    kind = config.pop("type")
    return TOWERS.build(kind, name=name, dtype=dtype, **config)


def modality_preprocessing(spec):
    """A preset modality entry's preprocessing options: what its tower implies, then its own.

    The one rule a task's config (:func:`mmkeras.models.config.resolve_shared`) and
    :meth:`mmkeras.preprocessing.Preprocessor.from_preset` share; the modality
    fills the remaining defaults.

    Args:
        spec: dict. ``{"tower": {"type": ..., ...}, "preprocessing": {...}}`` (a preset's ``modalities[m]``).

    Example:
    ```python
    modality_preprocessing({"tower": {"type": "image/cnn"}, "preprocessing": {"height": 28}})  # {"height": 28}
    ```
    """
    tower = spec["tower"]
    implied = TOWERS.get(tower["type"]).implied_preprocessing({k: v for k, v in tower.items() if k != "type"})
    return {**implied, **(spec.get("preprocessing") or {})}
