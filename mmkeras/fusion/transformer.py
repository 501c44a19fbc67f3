"""Early fusion: a joint transformer over all modalities' token sequences."""

import keras
from keras import layers, ops

from mmkeras.fusion.base import FUSIONS, Fusion, build_per_modality
from mmkeras.layers import MaskedMeanPooling, TransformerEncoder
from mmkeras.layers.shapes import chain


@keras.saving.register_keras_serializable(package="mmkeras")
@FUSIONS.register("fusion/transformer")
class TransformerFusion(Fusion):
    """Concatenates the tower sequences along time (each projected to ``dim`` and
    tagged with a learned modality embedding), runs joint transformer blocks with
    absent modalities and padding masked out, then mean-pools the valid tokens.

    Args:
        num_layers: int. Joint blocks.
        num_heads: int. Attention heads.
        mlp_ratio: float. MLP width multiple.
        modality_embeddings: bool. Add a learned per-modality vector to its tokens.
        project: bool. Project each sequence to ``dim`` (required when tower
            widths differ from ``dim``).
        final_norm: bool. LayerNorm after the last block.
        use_mask: bool. Mask padding/absent tokens (off reproduces a plain
            unmasked mean as in the hand-written reference model).

    Example:
    ```python
    fused = TransformerFusion(num_modalities=3, dim=64, num_layers=1)(outs, present)
    ```
    """

    uses_pooled = False

    def __init__(self, num_modalities, dim=128, num_layers=2, num_heads=4, mlp_ratio=4.0, dropout=0.0,
                 modality_embeddings=True, project=True, final_norm=True, use_mask=True, **kwargs):
        super().__init__(num_modalities, dim=dim, dropout=dropout, **kwargs)
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.modality_embeddings = modality_embeddings
        self.project = project
        self.final_norm = final_norm
        self.use_mask = use_mask
        self.projections = [
            layers.Dense(dim, dtype=self.dtype_policy, name=f"proj{i}") for i in range(num_modalities)
        ] if project else []
        self.encoder = TransformerEncoder(
            num_layers, num_heads, mlp_ratio, dropout, final_norm, dtype=self.dtype_policy, name="encoder"
        )
        self.pool = MaskedMeanPooling(dtype=self.dtype_policy, name="pool")

    def build_parts(self, towers_shape):
        if self.modality_embeddings:
            self.type_embedding = self.add_weight(
                name="type_embedding", shape=(self.num_modalities, self.dim), initializer="random_normal"
            )
        if self.project:
            build_per_modality(self.projections, towers_shape, key="sequence")
        else:
            widths = {shape["sequence"][-1] for shape in towers_shape}
            if widths != {self.dim}:
                raise ValueError(f"fusion/transformer with project=False needs every tower sequence to be "
                                 f"{self.dim} wide, got widths {sorted(widths)}")
        lengths = [shape["sequence"][1] for shape in towers_shape]
        tokens = (None, None if None in lengths else sum(lengths), self.dim)
        self.pool.build(chain([self.encoder], tokens, build=True))

    def fuse(self, towers, present, training=None):
        sequences = []
        for i, tower in enumerate(towers):
            seq = self.projections[i](tower["sequence"]) if self.project else tower["sequence"]
            if self.modality_embeddings:
                seq = seq + ops.cast(self.type_embedding[i], seq.dtype)
            sequences.append(seq)
        tokens = ops.concatenate(sequences, axis=1)
        mask = ops.concatenate([t["mask"] for t in towers], axis=1) if self.use_mask else None
        tokens = self.encoder(tokens, mask=mask, training=training)
        return self.pool(tokens, mask=mask)

    def get_config(self):
        return {
            **super().get_config(),
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "modality_embeddings": self.modality_embeddings,
            "project": self.project,
            "final_norm": self.final_norm,
            "use_mask": self.use_mask,
        }
