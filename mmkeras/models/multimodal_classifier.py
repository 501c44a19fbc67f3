"""Heads on a backbone: classification, multi-label, regression, and several at once (multi-task).

``MultimodalClassifier`` is what :func:`mmkeras.build_model` returns for a preset
with heads. ``MultimodalModel``, its name before the backbone/task split, still
names it (and loads the ``.keras`` files saved under that name).
"""

import keras

from mmkeras.compat import renamed_class
from mmkeras.heads import build_head
from mmkeras.models.config import resolve_config, single_head
from mmkeras.models.multimodal_backbone import MultimodalBackbone
from mmkeras.models.task import Task
from mmkeras.training.mixed_precision import dtype_policy_scope
from mmkeras.utils.safe_loading import budgeted_build


@keras.saving.register_keras_serializable(package="mmkeras")
class MultimodalClassifier(Task):
    """A multimodal classifier/regressor/multi-task model built from a preset config.

    One head gives a single output tensor (``scores``); several named heads give a
    dict keyed by head name, trained with per-head losses weighted by ``loss_weight``.
    Prefer :func:`mmkeras.build_model`, which resolves a preset name and overrides.

    Built from a preset config (what :meth:`from_preset` and :func:`mmkeras.build_model`
    do, and what ``.keras`` loading does), or composed over a backbone and a
    preprocessor built by hand (keras-hub style): ``backbone=`` plus ``num_classes``
    (or ``heads``).

    Args:
        config: dict or None. A preset with ``heads`` (see ``mmkeras.presets``); defaults are filled in.
        preprocessor: a :class:`~mmkeras.preprocessing.Preprocessor`, or bool or ``"auto"``: build
            the raw-input preprocessor from the config (TensorFlow).
        backbone: a :class:`~mmkeras.models.MultimodalBackbone` with a fusion block (instead of ``config``).
        num_classes: int or None. With ``backbone``: one classification head named ``"scores"``.
        class_names: list of str or None. With ``backbone``: its class names (implies ``num_classes``).
        heads: list of dict or None. With ``backbone``: the heads (multi-task), as in a preset.
        training: dict or None. With ``backbone``: the preset's ``training`` section.

    Example:
    ```python
    model = mmkeras.build_model("image_text_small", num_classes=3)
    model.fit({"image": pngs, "text": captions}, labels, epochs=2)
    probs = model.predict({"image": [png], "text": ["a red square"]})

    backbone = MultimodalBackbone.from_preset("image_text_small")        # composed by hand
    preprocessor = Preprocessor.from_preset("image_text_small")
    model = MultimodalClassifier(backbone=backbone, preprocessor=preprocessor, num_classes=3)
    ```
    """

    def __init__(self, config=None, preprocessor="auto", backbone=None, num_classes=None, class_names=None,
                 heads=None, training=None, **kwargs):
        if backbone is not None:
            if num_classes is not None or class_names is not None:
                heads = single_head(heads, num_classes, class_names)
            config = self.composed_config(backbone, config, heads=heads, training=training, name=kwargs.get("name"))
        elif config is None or any(v is not None for v in (num_classes, class_names, heads, training)):
            raise ValueError("MultimodalClassifier takes a preset config, or backbone=... with num_classes or "
                             "heads (use MultimodalClassifier.from_preset(name, num_classes=...) for a preset name)")
        config = resolve_config(config)
        # Record the effective policy so a reloaded .keras model gets the same dtypes.
        config["mixed_precision"] = config["mixed_precision"] or keras.config.dtype_policy().name
        with dtype_policy_scope(config["mixed_precision"]):
            with budgeted_build(f"model {config['name']!r}", config) as budget:  # safe-mode loads: bounded
                backbone = backbone or MultimodalBackbone(config)
                budget.measure(backbone)
                fused = self.backbone_output(backbone, "fused", "a classifier")
                outputs = {h["name"]: build_head(h)(fused) for h in config["heads"]}
            if len(outputs) == 1:
                outputs = next(iter(outputs.values()))
            super().__init__(backbone, outputs, config, preprocessor=preprocessor, **kwargs)

    @classmethod
    def from_preset(cls, preset, num_classes=None, class_names=None, **kwargs):
        """A classifier from a preset: backbone, heads and preprocessor, freshly initialised and compiled.

        Args:
            preset: str or dict. A registered preset name (:func:`mmkeras.list_presets`) or a preset dict.
            num_classes: int or None. One classification head named ``"scores"`` with this many classes
                (presets ship without heads: give this, ``class_names`` or ``heads=[...]``).
            class_names: list of str or None. The head's class names; implies ``num_classes``.
            **kwargs: ``preprocessor``, ``compile``, ``mixed_precision`` and preset overrides, as
                :meth:`mmkeras.models.Task.from_preset` takes them.

        Returns:
            A :class:`MultimodalClassifier`.

        Example:
        ```python
        model = MultimodalClassifier.from_preset("image_small", num_classes=3, learning_rate=3e-4)
        model.head_class_names()  # ["0", "1", "2"]
        ```
        """
        return super().from_preset(preset, num_classes=num_classes, class_names=class_names, **kwargs)

    @property
    def heads(self):
        """The resolved head configs."""
        return self.mm_config["heads"]

    @property
    def class_names(self):
        """Class names of the first head (``"0".."N-1"`` when it was built without names).

        An attribute, like ``model.heads``; :meth:`head_class_names` gives another head's.
        """
        return self.head_class_names()

    def head_class_names(self, head=None):
        """Class names of a classification head (defaults to ``"0".."N-1"``).

        Args:
            head: str or None. Head name (default: the first head).

        Example:
        ```python
        model.head_class_names("sentiment")   # ["negative", "positive"]
        ```
        """
        spec = self.heads[0] if head is None else next((h for h in self.heads if h["name"] == head), None)
        if spec is None:
            raise ValueError(f"no head named {head!r}; heads: {[h['name'] for h in self.heads]}")
        return list(spec.get("class_names") or [str(i) for i in range(spec["units"])])

    def validate_labels(self, y, num_examples):
        from mmkeras.data.raw import validate_labels

        return validate_labels(y, self.heads, num_examples)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", loss_weights="auto", jit_compile="auto",
                **kwargs):
        """Keras ``compile`` with preset defaults: the ``training`` optimizer and each head's loss/metrics.

        Any argument left at ``"auto"`` comes from the preset's ``training`` section
        and heads; pass Keras objects to override. ``jit_compile="auto"`` means XLA
        under JAX (where it is the fast path) and no XLA under TensorFlow (on CPU
        its compile costs tens of seconds per model; pass ``True`` on GPUs/TPUs).
        """
        heads = {h["name"]: h for h in self.heads}
        head_layers = {name: self.get_layer(name) for name in heads}
        single = len(heads) == 1
        if optimizer == "auto":
            optimizer = self.default_optimizer()
        optimizer = self.with_tower_learning_rates(optimizer)
        if loss == "auto":
            loss = {n: layer.default_loss() for n, layer in head_layers.items()}
            loss = next(iter(loss.values())) if single else loss
        if metrics == "auto":
            metrics = {n: layer.default_metrics() for n, layer in head_layers.items()}
            metrics = next(iter(metrics.values())) if single else metrics
        if loss_weights == "auto":
            loss_weights = None if single else {n: float(h["loss_weight"]) for n, h in heads.items()}
        if jit_compile == "auto":
            jit_compile = self.default_jit_compile()
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights,
                        jit_compile=jit_compile, **kwargs)


# The name before the backbone/task split (also in .keras files): see mmkeras.compat.
MultimodalModel = renamed_class("MultimodalModel", MultimodalClassifier)
