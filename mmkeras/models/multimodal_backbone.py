"""The backbone every task shares: feature inputs -> towers -> missing-modality handling -> fusion.

Pure Keras (``keras.ops`` only), so it builds and trains under JAX where TensorFlow
is not installed. Its inputs are the feature tensors the modalities declare
(:func:`mmkeras.modalities.feature_specs`) plus ``present`` ``[B, M]``.
"""

import json

import keras

from mmkeras.fusion import build_fusion
from mmkeras.layers import FoldWindows, MissingModality, ModalityDropout, WindowPooling
from mmkeras.modalities import feature_specs, modality, ordered
from mmkeras.models.config import backbone_architecture, resolve_backbone_config
from mmkeras.towers import build_tower
from mmkeras.training.mixed_precision import dtype_policy_scope
from mmkeras.utils.untracked import Untracked


@keras.saving.register_keras_serializable(package="mmkeras")
class MultimodalBackbone(keras.Model):
    """Towers, missing-modality handling and fusion over feature inputs (functional Keras).

    With a fusion block the output is ``{"fused": [B, D]}``: absent modalities'
    tower outputs go through :class:`~mmkeras.layers.MissingModality` first (a learned
    "missing" vector for blocks that read pooled vectors, cleared masks for all).
    Without one (``fusion: None``, e.g. contrastive or generative tasks that combine
    modalities themselves) the output is ``{"<modality>_pooled": [B, D_m]}`` and
    ``{"<modality>_sequence": [B, T_m, D_m]}`` (the tower's tokens, whose layout a VAE
    encoder keeps); the task reads ``present`` from the inputs.

    Its config holds the architecture only (``modalities``, ``fusion``,
    ``modality_dropout``, ``seed``, ``mixed_precision``): given a task's whole
    preset, it keeps those keys; ``heads``, ``training`` and the rest stay with the task.

    Args:
        config: dict. A resolved config (:func:`mmkeras.models.config.resolve_backbone_config`,
            or a task's resolved preset): ``modalities`` (preprocessing, tower, augment),
            ``fusion`` (or None), ``modality_dropout``, ``seed``, ``mixed_precision``.

    Example:
    ```python
    model = mmkeras.build_model("image_audio_small", num_classes=10)
    fused = model.backbone(features)["fused"]     # [B, 96]
    model.backbone.count_params()
    ```
    """

    def __init__(self, config, **kwargs):
        config = backbone_architecture(config)
        # Record the effective policy so a reloaded backbone (or a task composed on it) gets the same dtypes.
        config["mixed_precision"] = config.get("mixed_precision") or keras.config.dtype_policy().name
        modalities = ordered(config["modalities"])
        specs = feature_specs({m: config["modalities"][m]["preprocessing"] for m in modalities})
        with dtype_policy_scope(config.get("mixed_precision")):
            # === Section 1: feature inputs and towers ===
            inputs = {name: keras.Input(shape, dtype=dtype, name=name) for name, (shape, dtype) in specs.items()}
            tower_outputs = []
            for m in modalities:
                spec, kind = config["modalities"][m], modality(m)
                x = inputs[m]
                augment = kind.augmentation(spec.get("augment"), spec["preprocessing"], name=f"{m}_augment")
                if augment is not None:
                    x = augment(x)
                tower = build_tower(spec["tower"], name=f"{m}_tower")
                windows = kind.windows_feature(spec["preprocessing"])
                if windows:  # long-input mode: the tower runs per window, vectors pooled over valid windows
                    valid = inputs[windows]
                    pooled = tower(FoldWindows(name=f"{m}_fold_windows")(x))["pooled"]
                    tower_outputs.append(WindowPooling(valid.shape[1], name=f"{m}_window_pooling")(pooled, valid))
                else:
                    tower_outputs.append(tower(x))

            # Each tower's own vector, before missing-modality handling: what a task's unimodal heads read.
            modality_vectors = {m: out["pooled"] for m, out in zip(modalities, tower_outputs)}

            # === Section 2: presence and fusion ===
            fusion = _FusionSection(config, modalities) if config.get("fusion") else None
            if fusion is not None:
                outputs = {"fused": fusion(tower_outputs, inputs["present"])}
            else:
                outputs = {f"{m}_pooled": out["pooled"] for m, out in zip(modalities, tower_outputs)}
                outputs.update({f"{m}_sequence": out["sequence"] for m, out in zip(modalities, tower_outputs)})
            super().__init__(inputs=inputs, outputs=outputs, name=kwargs.pop("name", "backbone"), **kwargs)

        # === Section 3: config ===
        self._config_json = json.dumps(config)
        self.modalities = modalities
        # Symbolic tensors of the graph, held out of Keras' attribute tracking (rebuilt with the backbone).
        self._modality_vectors = Untracked(modality_vectors)
        self._tower_outputs = Untracked(dict(zip(modalities, tower_outputs)))
        self._fusion = Untracked(fusion)  # its layers are tracked through the graph

    @property
    def modality_vectors(self):
        """``{modality: [B, D_m] KerasTensor}``: each tower's pooled vector in this backbone's graph.

        Taken before missing-modality handling and modality dropout, so a task layer
        applied to it sees what the tower made of its input. A task builds on these
        (e.g. unimodal heads, ``auxiliary_heads`` in a classifier preset).

        Example:
        ```python
        backbone = MultimodalBackbone.from_preset("image_audio_small")
        sorted(backbone.modality_vectors)  # ["audio", "image"]
        ```
        """
        return dict(self._modality_vectors.value)

    @property
    def tower_outputs(self):
        """``{modality: {"sequence", "mask", "pooled"} KerasTensors}``: each tower's output in this graph.

        What the fusion section reads (before modality dropout and missing-modality
        handling); :meth:`fuse` runs that section again on tensors derived from these.

        Example:
        ```python
        backbone = MultimodalBackbone.from_preset("image_audio_small")
        assert backbone.tower_outputs["audio"]["pooled"].shape == (None, 96)
        ```
        """
        return dict(self._tower_outputs.value)

    def fuse(self, tower_outputs):
        """The fused vector of ``tower_outputs`` through this backbone's own fusion section (shared weights).

        Runs modality dropout (in training), missing-modality handling and the fusion
        block, the layers that made ``output["fused"]``, on other symbolic tower
        outputs, e.g. ones whose gradient a task modulates; ``present`` is the
        backbone's input. A task builds a second graph over the same weights with it.

        Args:
            tower_outputs: list of dict. One ``{"sequence", "mask", "pooled"}`` per modality, in
                :attr:`modalities` order (KerasTensors of this backbone's graph).

        Returns:
            The ``[B, D]`` fused KerasTensor.

        Example:
        ```python
        backbone = MultimodalBackbone.from_preset("image_audio_small")
        towers = backbone.tower_outputs
        fused = backbone.fuse([towers[m] for m in backbone.modalities])  # a second node, same weights
        assert fused.shape == backbone.output["fused"].shape
        ```
        """
        if self._fusion.value is None:
            raise ValueError(f"backbone {self.name!r} has no fusion block (fusion: None): nothing to fuse with")
        return self._fusion.value(list(tower_outputs), self.input["present"])

    @property
    def backbone_config(self):
        """The resolved config this backbone was built from (a fresh copy)."""
        return json.loads(self._config_json)

    def get_config(self):
        return {"config": self.backbone_config, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_preset(cls, preset, mixed_precision=None, **overrides):
        """The backbone of a preset (towers, missing-modality handling, fusion), freshly initialised.

        A preset with a ``contrastive`` or ``vae`` section gives a backbone without
        fusion (those tasks combine the modalities themselves). Compose a task on it
        with the task's constructor, e.g. ``MultimodalClassifier(backbone=...,
        num_classes=...)``.

        Args:
            preset: str or dict. A registered preset name (:func:`mmkeras.list_presets`) or a preset dict.
            mixed_precision: str or None. The Keras dtype policy to build with (None: the global one).
            **overrides: top-level preset keys, deep-merged as :func:`mmkeras.build_model` does
                (``fusion="fusion/gated"``, ``modalities={...}``, ``modality_dropout=0.2``).

        Returns:
            A :class:`MultimodalBackbone`.

        Example:
        ```python
        backbone = MultimodalBackbone.from_preset("image_audio_small")
        assert "heads" not in backbone.get_config()["config"]
        sorted(backbone.output)  # ["fused"]
        ```
        """
        from mmkeras.models.preset_config import preset_config  # at call time: the presets package imports tasks

        config = preset_config(preset, mixed_precision=mixed_precision, **overrides)
        return cls(resolve_backbone_config(config))


class _FusionSection:
    """A backbone's section 2 as one callable: modality dropout, missing-modality handling, fusion.

    Built once (the layers, in the order earlier versions created them, so seeded weights
    and layer names stay the same); called on the backbone's tower outputs, and again
    by :meth:`MultimodalBackbone.fuse` on tensors a task derives from them.
    """

    def __init__(self, config, modalities):
        self.dropout = (ModalityDropout(config["modality_dropout"], seed=config.get("seed"), name="modality_dropout")
                        if config.get("modality_dropout") else None)
        self.fusion = build_fusion(config["fusion"], num_modalities=len(modalities))
        self.missing = [MissingModality(learned=self.fusion.uses_pooled, name=f"{m}_missing") for m in modalities]

    def __call__(self, tower_outputs, present):
        if self.dropout is not None:
            present = self.dropout(present)
        tower_outputs = [missing(out, present[:, i]) for i, (missing, out) in enumerate(zip(self.missing,
                                                                                            tower_outputs))]
        return self.fusion(tower_outputs, present)
