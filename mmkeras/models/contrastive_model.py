"""A two-or-more-tower model trained without labels into one shared embedding space.

``ContrastiveModel`` reuses :class:`MultimodalModel`'s raw-input machinery
(preprocessing in ``tf.data``, ``fit(cache=True)``, ``.keras`` round trip) but
its graph ends in a :class:`~mmkeras.heads.contrastive.ContrastiveHead` instead
of fusion + heads, and its loss is the head's contrastive objective over the
examples' own pairing: ``fit(x)`` takes no ``y``.
"""

import copy

import keras

from mmkeras.heads.contrastive import ContrastiveHead
from mmkeras.models.config import resolve_config
from mmkeras.models.multimodal_model import MultimodalModel, build_towers
from mmkeras.training.mixed_precision import dtype_policy_scope
from mmkeras.training.optimizers import build_optimizer

CONTRASTIVE_DEFAULTS = {"dim": 64, "loss": "clip", "temperature": 0.07, "learn_temperature": True,
                        "siglip_bias": -5.0}


def resolve_contrastive_config(preset):
    """Fills defaults into a preset with a ``contrastive`` section; returns a new dict.

    The classifier's resolution checks everything but heads, so it runs on the
    preset without the contrastive keys and the section is added back.
    """
    preset = copy.deepcopy(preset)
    section = preset.pop("contrastive", None)
    if not isinstance(section, dict):
        raise ValueError("a contrastive model needs a 'contrastive' section, e.g. {'dim': 64, 'loss': 'clip'}")
    unknown = set(section) - set(CONTRASTIVE_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown contrastive option(s) {sorted(unknown)}; known: {sorted(CONTRASTIVE_DEFAULTS)}")
    if preset.get("heads"):
        raise ValueError("a contrastive model has no classification heads; drop 'heads'/num_classes")
    preset.pop("heads", None)
    config = resolve_config({**preset, "heads": [{"name": "unused", "units": 2}]})
    config["heads"] = []
    config.pop("fusion", None)
    config["contrastive"] = {**CONTRASTIVE_DEFAULTS, **section}
    if len(config["modalities"]) < 2:
        raise ValueError(f"a contrastive model needs at least 2 modalities, got {list(config['modalities'])}")
    return config


@keras.saving.register_keras_serializable(package="mmkeras")
class ContrastiveModel(MultimodalModel):
    """Towers + a contrastive head: a shared L2-normalised space for all modalities.

    Outputs ``{"<modality>_embedding": [B, dim] float32}``, unit vectors where the
    modality is present and zeros where it is absent (empty input). Trained on
    paired raw examples without labels; the exported SavedModel answers the
    ``embed`` signature.

    Args:
        config: dict. A preset with a ``contrastive`` section (``dim``, ``loss``:
            ``"clip"`` or ``"siglip"``, ``temperature``, ``learn_temperature``).

    Example:
    ```python
    model = mmkeras.build_model("av_contrastive_small")
    model.fit({"image": pngs, "audio": wavs}, epochs=5)   # no labels
    emb = model.predict({"image": pngs, "audio": [b""] * len(pngs)})
    emb["image_embedding"].shape  # (N, 64); emb["audio_embedding"] is all zeros
    ```
    """

    def __init__(self, config, **kwargs):
        config = resolve_contrastive_config(config)
        config["mixed_precision"] = config["mixed_precision"] or keras.config.dtype_policy().name
        with dtype_policy_scope(config["mixed_precision"]):
            # === Section 1: parts (preprocessor, inputs, towers) ===
            modalities, preprocessor, inputs, tower_outputs = build_towers(config)

            # === Section 2: functional graph ===
            pooled = [out["pooled"] for out in tower_outputs]
            head = ContrastiveHead(len(modalities), **config["contrastive"], name="contrastive")
            embeddings = head(pooled, inputs["present"])
            outputs = {f"{m}_embedding": e for m, e in zip(modalities, embeddings)}
            # Skip MultimodalModel.__init__ (fusion + heads); build the functional model directly.
            super(MultimodalModel, self).__init__(inputs=inputs, outputs=outputs,
                                                  name=kwargs.pop("name", config["name"]), **kwargs)

        # === Section 3: config and state ===
        self.mm_config = config
        self.modalities = modalities
        self.preprocessor = preprocessor

    @property
    def contrastive_head(self):
        return self.get_layer("contrastive")

    def compile(self, optimizer="auto", **kwargs):
        """Compiles with the preset's ``training`` optimizer; the loss is the contrastive objective."""
        if optimizer == "auto":
            optimizer = build_optimizer(self.mm_config["training"])
        kwargs.pop("loss", None)
        kwargs.pop("metrics", None)
        kwargs.pop("loss_weights", None)
        if kwargs.get("jit_compile", "auto") == "auto":  # same rule as MultimodalModel.compile
            kwargs["jit_compile"] = keras.backend.backend() == "jax"
        keras.Model.compile(self, optimizer=optimizer, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        embeddings = [y_pred[f"{m}_embedding"] for m in self.modalities]
        loss = self.contrastive_head.contrastive_loss(embeddings, x["present"])
        if self.losses:  # regularisers
            loss = loss + keras.ops.sum(keras.ops.stack(self.losses))
        return loss

    def fit(self, x=None, y=None, **kwargs):
        """Keras ``fit`` on paired raw inputs (or features); labels are not used.

        Example:
        ```python
        model.fit({"image": pngs, "audio": wavs}, epochs=5, batch_size=128)
        ```
        """
        if y is not None:
            raise ValueError("a contrastive model is trained on paired inputs only: call fit(x) without y")
        if kwargs.get("validation_split"):
            raise ValueError("validation_split is not supported here; pass validation_data=(x,) instead")
        return super().fit(x, None, **kwargs)

    def embed(self, x, batch_size=None, verbose=0):
        """Raw inputs -> ``{"<modality>_embedding": [N, dim] array}`` (zeros where absent).

        Example:
        ```python
        emb = model.embed({"image": pngs, "audio": [b""] * len(pngs)})["image_embedding"]
        ```
        """
        return self.predict(x, batch_size=batch_size, verbose=verbose)

    def embed_features(self, features):
        """Feature dict -> embeddings plus ``present`` (the exported ``embed`` signature)."""
        outputs = self(features, training=False)
        return {**outputs, "present": keras.ops.cast(features["present"], "float32")}
