"""What single fusion blocks promise beyond the shared part tests: their papers' formulas,
how they treat absent modalities, and errors for options that cannot work."""

import keras
import numpy as np
import pytest

from mmkeras.fusion import build_fusion
from mmkeras.layers import CrossAttentionBlock, MissingModality
from mmkeras.training.mixed_precision import dtype_policy_scope
from tests.part_cases import FUSION_CASES, PRESENCE_PATTERNS, RNG
from tests.part_cases import fusion_inputs as _fusion_inputs
from tests.part_cases import towers_from as _towers


def test_low_rank_fusion_is_the_rank_r_tensor_fusion():
    """LMF equals a linear map of TFN's outer product of ``[z_m; 1]`` whose weight tensor is
    ``sum_r outer_m W_m^(r)`` (Liu et al. 2018, Eq. 3-6)."""
    rank, dim = 3, 8
    fusion = build_fusion({"type": "fusion/lmf", "rank": rank, "dim": dim}, num_modalities=3)
    towers = _towers(_fusion_inputs())
    out = np.asarray(fusion(towers, np.ones((3, 3), "float32")))
    z = [np.concatenate([t["pooled"], np.ones((3, 1), "float32")], axis=1) for t in towers]
    factors = [np.asarray(f).reshape(f.shape[0], rank, dim) for f in fusion.factors]  # [d_m + 1, r, dim]
    weight = sum(np.einsum("io,jo,ko->ijko", *(f[:, r] for f in factors)) for r in range(rank))
    tfn = np.einsum("bi,bj,bk->bijk", *z)  # the (d + 1)^3 tensor TFN would form
    np.testing.assert_allclose(out, np.einsum("bijk,ijko->bo", tfn, weight), rtol=1e-4, atol=1e-4)


def test_cross_attention_reads_only_valid_context():
    x = RNG.standard_normal((3, 5, 8)).astype("float32")
    context = RNG.standard_normal((3, 4, 6)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], bool)
    block = CrossAttentionBlock(num_heads=2)
    base = np.asarray(block(x, context, context_mask=mask))
    # Masked keys, and a context with no valid key at all, change nothing.
    changed = np.where(mask[:, :, None], context, 99.0).astype("float32")
    np.testing.assert_allclose(np.asarray(block(x, changed, context_mask=mask)), base, atol=1e-5)
    # Row 1 has no valid key: x goes through the MLP half only.
    np.testing.assert_allclose(base[1], np.asarray(block.mlp_residual(x, 0.0 * x))[1], atol=1e-5)
    # Valid keys are read.
    moved = context + RNG.standard_normal(context.shape).astype("float32")  # (+1 everywhere: LayerNorm undoes it)
    assert not np.allclose(np.asarray(block(x, moved, context_mask=mask))[[0, 2]], base[[0, 2]], atol=1e-4)


def test_bottleneck_fusion_leaves_absent_streams_out():
    """MBT: an absent modality's stream (its blocks, their bottleneck updates, its read-out) changes nothing."""
    # Layer 0 unfused; layer 1's bottleneck average feeds layer 2 (the last layer's is never read).
    config = {**FUSION_CASES["fusion/bottleneck"], "num_layers": 3, "fusion_layer": 1}
    fusion = build_fusion({"type": "fusion/bottleneck", **config}, num_modalities=3)
    present = PRESENCE_PATTERNS["some absent"]  # modality 1 is absent in row 1 only
    towers = [MissingModality(learned=False)(t, present[:, i]) for i, t in enumerate(_towers(_fusion_inputs()))]
    base = np.asarray(fusion(towers, present))
    parts = ("proj1", "readout1", "block0_1", "block1_1", "block2_1")
    stream = [w for w in fusion.weights if w.path.split("/")[1] in parts]
    assert len(stream) > 10
    for w in stream:
        w.assign(w.numpy() + RNG.normal(0.0, 0.5, w.shape).astype("float32"))
    out = np.asarray(fusion(towers, present))
    np.testing.assert_allclose(out[1], base[1], atol=1e-5)
    assert not np.allclose(out[0], base[0], atol=1e-3)


@pytest.mark.parametrize("key", sorted(FUSION_CASES))
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_fusion_is_finite_with_every_modality_absent_in_mixed_precision(key, policy):
    """Masked attention uses finite negatives that survive float16; a row with nothing present stays finite."""
    present = PRESENCE_PATTERNS["all absent in row 1"]
    with dtype_policy_scope(policy):
        fusion = build_fusion({"type": key, **FUSION_CASES[key]}, num_modalities=3, dtype=policy)
        missing = [MissingModality(learned=fusion.uses_pooled, dtype=policy) for _ in range(3)]
    towers = [m(t, present[:, i]) for i, (m, t) in enumerate(zip(missing, _towers(_fusion_inputs())))]
    out = np.asarray(keras.ops.cast(fusion(towers, present), "float32"))
    assert np.all(np.isfinite(out)), out


@pytest.mark.parametrize("key,options,message", [
    ("fusion/coattention", {}, "fusion/coattention needs at least 2 modalities"),
    ("fusion/mult", {}, "fusion/mult needs at least 2 modalities"),
])
def test_cross_modal_blocks_need_two_modalities(key, options, message):
    with pytest.raises(ValueError, match=message):
        build_fusion({"type": key, **options}, num_modalities=1)


@pytest.mark.parametrize("key,options,message", [
    ("fusion/mult", {"dim": 8, "num_heads": 3}, "fusion/mult: num_heads=3 must be a positive divisor of dim=8"),
    ("fusion/coattention", {"dim": 8, "num_heads": 3}, "fusion/coattention: num_heads=3 must be a positive divisor"),
    ("fusion/perceiver", {"dim": 8, "num_heads": 3}, "fusion/perceiver: num_heads=3 must be a positive divisor"),
    ("fusion/perceiver", {"num_latents": 0}, "fusion/perceiver: num_latents must be >= 1, got 0"),
    ("fusion/bottleneck", {"dim": 8, "num_heads": 3}, "fusion/bottleneck: num_heads=3 must be a positive divisor"),
    ("fusion/bottleneck", {"num_layers": 2, "fusion_layer": 3},
     r"fusion/bottleneck: fusion_layer=3 must be in \[0, num_layers=2\]"),
    ("fusion/bottleneck", {"num_bottlenecks": 0}, "fusion/bottleneck: num_bottlenecks must be >= 1, got 0"),
    ("fusion/lmf", {"rank": 0}, "fusion/lmf: rank must be a positive integer, got 0"),
])
def test_fusion_options_that_cannot_work_fail_clearly(key, options, message):
    with pytest.raises(ValueError, match=message):
        build_fusion({"type": key, **options}, num_modalities=2)
