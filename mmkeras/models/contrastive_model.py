"""A two-or-more-modality task trained without labels into one shared embedding space.

``ContrastiveModel`` is a sibling of the classifier over the same backbone
(without a fusion block): a :class:`~mmkeras.heads.contrastive.ContrastiveHead`
projects each modality's pooled tower vector into one L2-normalised space, and the
loss is the head's contrastive objective over the examples' own pairing, so
``fit(x)`` takes no ``y``.
"""

import keras

from mmkeras.heads.contrastive import ContrastiveHead
from mmkeras.models.config import resolve_headless
from mmkeras.models.multimodal_backbone import MultimodalBackbone
from mmkeras.models.task import Task
from mmkeras.training.mixed_precision import dtype_policy_scope
from mmkeras.utils.safe_loading import budgeted_build

CONTRASTIVE_DEFAULTS = {"dim": 64, "loss": "clip", "temperature": 0.07, "learn_temperature": True,
                        "siglip_bias": -5.0}


def resolve_contrastive_config(preset):
    """Fills defaults into a preset with a ``contrastive`` section; returns a new dict."""
    config = resolve_headless(preset, "contrastive", CONTRASTIVE_DEFAULTS, "a contrastive model",
                              "{'dim': 64, 'loss': 'clip'}")
    if len(config["modalities"]) < 2:
        raise ValueError(f"a contrastive model needs at least 2 modalities, got {list(config['modalities'])}")
    return config


@keras.saving.register_keras_serializable(package="mmkeras")
class ContrastiveModel(Task):
    """Towers + a contrastive head: a shared L2-normalised space for all modalities.

    Outputs ``{"<modality>_embedding": [B, dim] float32}``, unit vectors where the
    modality is present and zeros where it is absent (empty input). Trained on
    paired raw examples without labels; the exported SavedModel answers the
    ``embed`` signature.

    Args:
        config: dict or None. A preset with a ``contrastive`` section (``dim``, ``loss``:
            ``"clip"`` or ``"siglip"``, ``temperature``, ``learn_temperature``).
        preprocessor: a :class:`~mmkeras.preprocessing.Preprocessor`, or bool or ``"auto"``: build
            the raw-input preprocessor from the config (TensorFlow).
        backbone: a :class:`~mmkeras.models.MultimodalBackbone` without fusion (instead of ``config``).
        contrastive: dict or None. With ``backbone``: the ``contrastive`` section (defaults filled in).
        training: dict or None. With ``backbone``: the preset's ``training`` section.

    Example:
    ```python
    modalities = mmkeras.get_preset("image_audio_small")["modalities"]
    model = mmkeras.build_model({"modalities": modalities, "contrastive": {"dim": 64}})
    model.fit({"image": pngs, "audio": wavs}, epochs=5)   # no labels
    emb = model.predict({"image": pngs, "audio": [b""] * len(pngs)})
    emb["image_embedding"].shape  # (N, 64); emb["audio_embedding"] is all zeros
    ```
    """

    def __init__(self, config=None, preprocessor="auto", backbone=None, contrastive=None, training=None, **kwargs):
        if backbone is not None:
            config = self.composed_config(backbone, config, contrastive=contrastive or {}, training=training,
                                          name=kwargs.get("name"))
        elif config is None or contrastive is not None or training is not None:
            raise ValueError("ContrastiveModel takes a preset config, or backbone=... (use "
                             "ContrastiveModel.from_preset(name) for a preset name)")
        config = resolve_contrastive_config(config)
        config["mixed_precision"] = config["mixed_precision"] or keras.config.dtype_policy().name
        with dtype_policy_scope(config["mixed_precision"]):
            with budgeted_build(f"model {config['name']!r}", config) as budget:  # safe-mode loads: bounded
                backbone = backbone or MultimodalBackbone(config)
                budget.measure(backbone)
                modalities = backbone.modalities
                pooled = [self.backbone_output(backbone, f"{m}_pooled", "a contrastive model") for m in modalities]
                head = ContrastiveHead(len(modalities), **config["contrastive"], name="contrastive")
                embeddings = head(pooled, backbone.input["present"])
            outputs = {f"{m}_embedding": e for m, e in zip(modalities, embeddings)}
            super().__init__(backbone, outputs, config, preprocessor=preprocessor, **kwargs)

    @property
    def heads(self):
        return []  # no labelled heads: serving answers embeddings

    @property
    def contrastive_head(self):
        return self.get_layer("contrastive")

    def compile(self, optimizer="auto", jit_compile="auto", **kwargs):
        """Compiles with the preset's ``training`` optimizer; the loss is the contrastive objective."""
        self.compile_own_loss(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

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
