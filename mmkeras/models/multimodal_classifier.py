"""Heads on a backbone: classification, multi-label, regression, and several at once (multi-task).

``MultimodalClassifier`` is what :func:`mmkeras.build_model` returns for a preset
with heads. ``MultimodalModel``, its name before the backbone/task split, still
names it (and loads the ``.keras`` files saved under that name).
"""

import keras

from mmkeras.compat import renamed_class
from mmkeras.heads import build_head
from mmkeras.layers.gradient_modulation import GradientModulation
from mmkeras.models.config import resolve_config, single_head
from mmkeras.models.multimodal_backbone import MultimodalBackbone
from mmkeras.models.task import Task
from mmkeras.training.mixed_precision import dtype_policy_scope
from mmkeras.utils.safe_loading import budgeted_build
from mmkeras.utils.untracked import Untracked


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

    Balancing the modalities (preset keys, training only): ``auxiliary_heads`` gives each
    tower its own copy of the heads and loss; ``gradient_modulation`` (OGM, Peng et al.,
    CVPR 2022; needs ``auxiliary_heads``) then, at every step, scales the fused loss's
    gradient into modality ``m``'s tower by ``k_m = 1 - tanh(alpha * relu(rho_m - 1))``,
    ``rho_m`` = its unimodal heads' mean true-class probability on the batch over the
    mean of the other modalities' (examples with the modality only): a modality that
    is ahead learns slower through fusion, so the fused model leans less on it. A
    variant of OGM-GE: the scores come from the unimodal heads (not from per-modality
    parts of the fused logits), the comparison is with the mean of the others (the
    same for two modalities), the coefficients set at a step apply from the next one,
    the unimodal heads' own gradients are not scaled, and there is no GE noise.

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

    balanced = mmkeras.build_model("image_audio_small", num_classes=10, auxiliary_heads=True,
                                   gradient_modulation={"alpha": 0.5})
    balanced.fit(x, y, epochs=3)
    balanced.gradient_modulation.coefficients  # k per modality: < 1 for the one ahead

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
                head_layers = {h["name"]: build_head(h) for h in config["heads"]}
                outputs = _single_or_dict({name: layer(fused) for name, layer in head_layers.items()})
                auxiliary = self._auxiliary_outputs(backbone, config)
                modulation, trained = self._modulated_outputs(backbone, config, head_layers)
            super().__init__(backbone, outputs, config, preprocessor=preprocessor, **kwargs)
        # Training runs a second graph over the same layers that also returns the unimodal heads' outputs
        # (and, with gradient modulation, fuses gradient-scaled tower outputs); inference, export and
        # serving run the task's own graph (the fused heads only).
        trained = outputs if trained is None else trained
        self._training_graph = Untracked(
            keras.Model(inputs=backbone.input, outputs={"fused": trained, "auxiliary": auxiliary[0]})
            if auxiliary else None)
        self.auxiliary_heads = auxiliary[1] if auxiliary else []  # tracked: saved and trained with the model
        self.gradient_modulation = modulation  # tracked (its coefficients are saved); None without the option

    @staticmethod
    def _auxiliary_outputs(backbone, config):
        """Unimodal supervision (``auxiliary_heads``): each head again on each modality's tower vector.

        Returns ``({modality: {head: output}}, [layers])``, or None when the preset has none.
        """
        if not config.get("auxiliary_heads"):
            return None
        outputs, layers = {}, []
        for m, vector in backbone.modality_vectors.items():
            for h in config["heads"]:
                layer = build_head({**h, "name": auxiliary_head_name(m, h["name"])})
                outputs.setdefault(m, {})[h["name"]] = layer(vector)
                layers.append(layer)
        return outputs, layers

    @staticmethod
    def _modulated_outputs(backbone, config, head_layers):
        """Gradient modulation (``gradient_modulation``): the heads again, on a fusion of gradient-scaled towers.

        Returns ``(GradientModulation layer, heads' outputs of the training graph)``, or ``(None, None)``.
        """
        if not config.get("gradient_modulation"):
            return None, None
        modulation = GradientModulation(len(backbone.modalities), name="gradient_modulation")
        towers = backbone.tower_outputs
        fused = backbone.fuse(modulation([towers[m] for m in backbone.modalities]))
        return modulation, _single_or_dict({name: layer(fused) for name, layer in head_layers.items()})

    def auxiliary_head(self, modality, head=None):
        """The unimodal copy of ``head`` (default: the first) on ``modality``'s tower (``auxiliary_heads``).

        Example:
        ```python
        model = mmkeras.build_model("image_audio_small", num_classes=3, auxiliary_heads={"loss_weight": 0.5})
        model.auxiliary_head("audio").name  # "audio_scores_auxiliary"
        ```
        """
        name = auxiliary_head_name(modality, head or self.heads[0]["name"])
        found = [layer for layer in self.auxiliary_heads if layer.name == name]
        if not found:
            raise ValueError(f"model {self.name!r} has no unimodal head {name!r}; it has "
                             f"{[layer.name for layer in self.auxiliary_heads]} (preset key 'auxiliary_heads')")
        return found[0]

    def call(self, inputs, training=None, mask=None):
        if training and self._training_graph.value is not None:
            return self._training_graph.value(inputs, training=True)
        return super().call(inputs, training=training, mask=mask)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The heads' compiled losses, plus (in training, with ``auxiliary_heads``) the unimodal heads' losses.

        A unimodal head's loss counts the examples whose modality is present
        (``x["present"]``), weighted by ``auxiliary_heads.loss_weight`` times its
        head's ``loss_weight``; modality dropout does not hide a tower from its own head.
        """
        y_pred, auxiliary = self._split_auxiliary(y_pred)
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if auxiliary is None:
            return loss
        if self.gradient_modulation is not None:
            self._modulate(x["present"], y, auxiliary)
        return loss + self._auxiliary_loss(x["present"], y, auxiliary, sample_weight)

    def _modulate(self, present, y, auxiliary):
        """OGM: sets each tower's gradient coefficient from the unimodal heads' scores on this batch.

        A modality's score ``s_m`` is its unimodal heads' mean probability of the true
        class over the batch's examples that have it (summed over classification heads);
        ``rho_m = s_m / mean(s of the other modalities)`` and
        ``k_m = 1 - tanh(alpha * relu(rho_m - 1))``: a modality ahead of the others
        has its fused-path gradient scaled down. A modality without examples in the
        batch (or without another modality to compare with) keeps its coefficient.
        The new coefficients take effect at the next step (this step's forward pass
        already read them).
        """
        ops = keras.ops
        alpha = float(self.mm_config["gradient_modulation"]["alpha"])
        present = ops.cast(present, "float32")  # [B, M]
        scores = 0.0
        for h in self.heads:
            if h["type"] != "classification":
                continue
            labels = ops.reshape(ops.cast(self._head_labels(y, h), "int32"), (-1, 1))
            probs = ops.stack([ops.take_along_axis(ops.cast(auxiliary[m][h["name"]], "float32"), labels, axis=1)[:, 0]
                               for m in self.modalities], axis=1)  # [B, M]: each unimodal head's true-class prob
            scores = scores + ops.sum(probs * present, axis=0)
        counts = ops.sum(present, axis=0)
        has = ops.cast(counts > 0, "float32")
        scores = ops.stop_gradient(scores) / ops.maximum(counts, 1.0) * has
        others = ops.sum(has) - has
        rho = scores / ops.maximum((ops.sum(scores) - scores) / ops.maximum(others, 1.0), 1e-7)
        k = 1.0 - ops.tanh(alpha * ops.relu(rho - 1.0))
        coefficients = self.gradient_modulation.coefficients
        coefficients.assign(ops.where((has > 0) & (others > 0), k, coefficients.value))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, self._split_auxiliary(y_pred)[0], sample_weight=sample_weight)

    def _split_auxiliary(self, y_pred):
        """``(fused heads' outputs, unimodal heads' outputs or None)`` of what the model's call returned."""
        # Heads may themselves be named "fused" and "auxiliary": the training graph's "auxiliary" is a dict
        # of modalities, where a head's output is a tensor.
        if (self._training_graph.value is not None and isinstance(y_pred, dict)
                and set(y_pred) == {"fused", "auxiliary"} and isinstance(y_pred["auxiliary"], dict)):
            return y_pred["fused"], y_pred["auxiliary"]
        return y_pred, None

    def _head_labels(self, y, head):
        """The labels of ``head``: ``y`` itself for a one-head model, else its entry."""
        return y if len(self.heads) == 1 else y[head["name"]]

    def _auxiliary_loss(self, present, y, auxiliary, sample_weight):
        ops = keras.ops
        scale = float(self.mm_config["auxiliary_heads"]["loss_weight"])
        total = 0.0
        for h in self.heads:
            loss_fn = self.get_layer(h["name"]).default_loss()
            labels = self._head_labels(y, h)
            weights = sample_weight.get(h["name"]) if isinstance(sample_weight, dict) else sample_weight
            weights = None if weights is None else ops.reshape(ops.cast(weights, "float32"), (-1,))
            for i, m in enumerate(self.modalities):
                seen = ops.cast(present[:, i], "float32")
                if weights is not None:
                    seen = seen * weights
                total = total + scale * float(h["loss_weight"]) * loss_fn(labels, auxiliary[m][h["name"]], seen)
        return total

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


def _single_or_dict(outputs):
    """A task's heads' outputs: the one tensor of a single head, else ``{head: tensor}``."""
    return next(iter(outputs.values())) if len(outputs) == 1 else outputs


def auxiliary_head_name(modality, head):
    """The layer name of ``head``'s unimodal copy on ``modality`` (``"audio_scores_auxiliary"``)."""
    return f"{modality}_{head}_auxiliary"


# The name before the backbone/task split (also in .keras files): see mmkeras.compat.
MultimodalModel = renamed_class("MultimodalModel", MultimodalClassifier)
