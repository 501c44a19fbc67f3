"""Contrastive head: one shared, L2-normalised embedding space for every modality.

The head projects each modality's pooled tower vector to ``dim``, normalises it
and owns the learned temperature. Its :meth:`ContrastiveHead.contrastive_loss`
is CLIP's symmetric InfoNCE (Radford et al. 2021) or SigLIP's pairwise sigmoid
loss (Zhai et al. 2023), summed over every pair of modalities and restricted to
the examples where both modalities of the pair are present.
"""

import math

import keras
from keras import layers, ops

from mmkeras.layers.shapes import shapes_by_name

LOSSES = ("clip", "siglip")
_MAX_LOGIT_SCALE = 100.0  # CLIP clamps exp(scale) at 100 so the softmax cannot collapse


def _is_shape(value):
    return isinstance(value, (list, tuple)) and all(d is None or isinstance(d, int) for d in value)


def split_inputs(pooled, present):
    """``(pooled, present)`` from the two arguments or from one structure holding both.

    Keras passes a layer's inputs as one structure in some paths (a functional
    call on ``[pooled, present]``, ``compute_output_spec`` on a dict); tensors and
    shapes are both accepted.

    Example:
    ```python
    pooled, present = split_inputs([[img, aud], present], None)
    ```
    """
    if present is not None:
        return pooled, present
    if isinstance(pooled, dict) and set(pooled) == {"pooled", "present"}:
        return pooled["pooled"], pooled["present"]
    if (isinstance(pooled, (list, tuple)) and len(pooled) == 2 and isinstance(pooled[0], (list, tuple))
            and not _is_shape(pooled[0])):
        return pooled[0], pooled[1]
    raise ValueError("ContrastiveHead needs the pooled vectors and `present` [B, M]: call head(pooled, present), "
                     "head([pooled, present]) or head({'pooled': pooled, 'present': present})")


@keras.saving.register_keras_serializable(package="mmkeras")
class ContrastiveHead(keras.layers.Layer):
    """Per-modality projection into a shared L2-normalised space, plus the temperature.

    Called on the list of pooled tower vectors and ``present`` ``[B, M]``, it
    returns one float32 ``[B, dim]`` embedding per modality, unit length where the
    modality is present and all zeros where it is absent.

    Args:
        num_modalities: int. How many modalities are projected.
        dim: int. Width of the shared space.
        loss: str. ``"clip"`` (symmetric InfoNCE) or ``"siglip"`` (sigmoid).
        temperature: float. Initial temperature (``logits = cos_sim / T``).
        learn_temperature: bool. Train ``log(1/T)`` (True) or keep it fixed.
        siglip_bias: float. Initial logit bias of the sigmoid loss (SigLIP uses -10
            for large batches; small batches want less).

    Example:
    ```python
    head = ContrastiveHead(num_modalities=2, dim=64)
    img_emb, aud_emb = head([img_pooled, aud_pooled], present)
    loss = head.contrastive_loss([img_emb, aud_emb], present)
    ```
    """

    def __init__(self, num_modalities, dim=64, loss="clip", temperature=0.07, learn_temperature=True,
                 siglip_bias=-5.0, **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"contrastive loss must be one of {LOSSES}, got {loss!r}")
        if num_modalities < 2:
            raise ValueError(f"a contrastive model needs at least 2 modalities, got {num_modalities}")
        self.num_modalities = num_modalities
        self.dim = dim
        self.loss = loss
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.siglip_bias = siglip_bias
        # float32 whatever the policy: embeddings are exported and compared by dot products.
        self.projections = [layers.Dense(dim, dtype="float32", name=f"proj{i}") for i in range(num_modalities)]

    def build(self, pooled_shape=None, present_shape=None, **call_named):
        pooled_shape, present_shape = shapes_by_name(call_named, pooled_shape=pooled_shape,
                                                     present_shape=present_shape)
        pooled_shape, _ = split_inputs(pooled_shape, present_shape)
        for proj, shape in zip(self.projections, pooled_shape):
            proj.build(shape)
        self.logit_scale = self.add_weight(
            name="logit_scale", shape=(), initializer=keras.initializers.Constant(math.log(1.0 / self.temperature)),
            trainable=self.learn_temperature, dtype="float32")
        self.logit_bias = self.add_weight(
            name="logit_bias", shape=(), initializer=keras.initializers.Constant(self.siglip_bias),
            trainable=self.loss == "siglip", dtype="float32")

    def call(self, pooled, present=None):
        pooled, present = split_inputs(pooled, present)
        present = ops.cast(present, "float32")
        out = []
        for i, (proj, x) in enumerate(zip(self.projections, pooled)):
            e = proj(ops.cast(x, "float32"))
            e = e / ops.sqrt(ops.sum(e * e, axis=-1, keepdims=True) + 1e-12)
            out.append(e * present[:, i:i + 1])  # absent -> zero vector, never a guess
        return out

    def compute_mask(self, *args, **kwargs):
        return None

    def compute_output_shape(self, pooled_shape, present_shape=None):
        pooled_shape, _ = split_inputs(pooled_shape, present_shape)
        return [(shape[0], self.dim) for shape in pooled_shape]

    def compute_output_spec(self, pooled, present=None):
        pooled, _ = split_inputs(pooled, present)
        return [keras.KerasTensor((p.shape[0], self.dim), dtype="float32") for p in pooled]

    def scale(self):
        """The current ``1 / temperature`` (clamped at 100)."""
        return ops.minimum(ops.exp(self.logit_scale), _MAX_LOGIT_SCALE)

    def pair_loss(self, a, b, valid):
        """Loss between two modalities' embeddings ``[B, D]``; ``valid`` ``[B]`` marks usable pairs."""
        valid = ops.cast(valid, "float32")
        pair_mask = ops.cast(ops.expand_dims(valid, 1) * ops.expand_dims(valid, 0), "bool")
        logits = self.scale() * ops.matmul(a, ops.transpose(b))
        n_valid = ops.maximum(ops.sum(valid), 1.0)
        if self.loss == "clip":
            logits = ops.where(pair_mask, logits, -1e9)  # absent items are no candidates
            diag = ops.diagonal(logits)
            row = diag - ops.logsumexp(logits, axis=1)
            col = diag - ops.logsumexp(logits, axis=0)
            return -ops.sum((row + col) * valid) / (2.0 * n_valid)
        eye = ops.eye(ops.shape(a)[0], dtype="float32")
        signs = 2.0 * eye - 1.0
        terms = ops.log_sigmoid(signs * (logits + self.logit_bias))
        return -ops.sum(ops.where(pair_mask, terms, 0.0)) / n_valid

    def contrastive_loss(self, embeddings, present):
        """Mean of :meth:`pair_loss` over every pair of modalities."""
        present = ops.cast(present, "float32")
        losses = []
        for i in range(self.num_modalities):
            for j in range(i + 1, self.num_modalities):
                losses.append(self.pair_loss(embeddings[i], embeddings[j], present[:, i] * present[:, j]))
        return ops.mean(ops.stack(losses))

    def get_config(self):
        return {
            **super().get_config(), "num_modalities": self.num_modalities, "dim": self.dim, "loss": self.loss,
            "temperature": self.temperature, "learn_temperature": self.learn_temperature,
            "siglip_bias": self.siglip_bias,
        }
