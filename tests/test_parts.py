"""Every registered tower, fusion block and head through the shared part helper."""

import numpy as np
import pytest

from mmkeras.fusion import FUSIONS, build_fusion
from mmkeras.heads import HEADS, build_head
from mmkeras.layers import MissingModality
from mmkeras.towers import TOWERS, build_tower
from tests.helpers import library_keys, run_part_test
from tests.part_cases import BATCH, FUSION_CASES, HEAD_CASES, PRESENCE_PATTERNS, RNG, TOWER_CASES
from tests.part_cases import fusion_inputs as _fusion_inputs
from tests.part_cases import towers_from as _towers


def test_every_registered_part_has_a_case():
    assert library_keys(TOWERS) == set(TOWER_CASES)
    assert library_keys(FUSIONS) == set(FUSION_CASES)
    assert set(HEADS.keys()) == {"classification", "multilabel", "regression"} | set(EXTRA_HEADS)


@pytest.mark.parametrize("key", sorted(TOWER_CASES))
def test_tower(key, tmp_path):
    config, x = TOWER_CASES[key]
    out = run_part_test(
        lambda dtype=None: build_tower({"type": key, **config}, name="tower", dtype=dtype),
        {"x": x}, lambda layer, ins: layer(ins["x"])["pooled"], tmp_path,
    )
    assert out.shape == (BATCH, config["dim"])


@pytest.mark.parametrize("key", sorted(TOWER_CASES))
def test_tower_contract(key):
    config, x = TOWER_CASES[key]
    out = build_tower({"type": key, **config}, name="tower")(x)
    seq, mask, pooled = (np.asarray(out[k]) for k in ("sequence", "mask", "pooled"))
    assert seq.ndim == 3 and seq.shape[0] == BATCH and seq.shape[2] == config["dim"]
    assert mask.shape == seq.shape[:2] and mask.dtype == bool
    assert pooled.shape == (BATCH, config["dim"])
    if key.startswith("text/"):
        np.testing.assert_array_equal(mask[:, : x.shape[1]] if key != "text/cnn" else mask, x != 0)


EXTRA_HEADS = {}


@pytest.mark.parametrize("key", sorted(FUSION_CASES))
def test_fusion(key, tmp_path):
    out = run_part_test(
        lambda dtype=None: build_fusion({"type": key, **FUSION_CASES[key]}, num_modalities=3, dtype=dtype),
        _fusion_inputs(), lambda layer, ins: layer(_towers(ins), ins["present"]), tmp_path,
    )
    assert out.shape == (BATCH, 8)


@pytest.mark.parametrize("key", sorted(FUSION_CASES))
def test_fusion_ignores_absent_modalities(key):
    """An absent modality's tensors, changed arbitrarily, change nothing; present ones do.

    Both versions go through MissingModality as in the model (it clears the mask and
    replaces ``pooled``), then the block, for every registered block.
    """
    fusion = build_fusion({"type": key, **FUSION_CASES[key]}, num_modalities=3)
    missing = [MissingModality(learned=fusion.uses_pooled, name=f"missing{i}") for i in range(3)]
    towers = _towers(_fusion_inputs())
    for name, present in PRESENCE_PATTERNS.items():
        def fuse(raw, present=present):
            outs = [m(t, present[:, i]) for i, (m, t) in enumerate(zip(missing, raw))]
            return np.asarray(fusion(outs, present))

        base = fuse(towers)
        assert np.all(np.isfinite(base)), name
        changed = []
        for i, t in enumerate(towers):
            absent = present[:, i] == 0
            changed.append({
                "sequence": np.where(absent[:, None, None], RNG.normal(50.0, 30.0, t["sequence"].shape),
                                     t["sequence"]).astype("float32"),
                "mask": np.where(absent[:, None], RNG.random(t["mask"].shape) > 0.5, t["mask"]),
                "pooled": np.where(absent[:, None], RNG.normal(-20.0, 10.0, t["pooled"].shape),
                                   t["pooled"]).astype("float32"),
            })
        np.testing.assert_allclose(fuse(changed), base, atol=1e-5, err_msg=f"{key}, {name}")
        # Not vacuous: changing a present modality (row 0 has all three) changes row 0.
        moved = [dict(t) for t in towers]
        moved[0] = {**towers[0], "sequence": towers[0]["sequence"] + 1.0, "pooled": towers[0]["pooled"] + 1.0}
        assert not np.allclose(fuse(moved)[0], base[0], atol=1e-4), f"{key} ignores a present modality"


def test_attention_fusion_heads_must_divide_dim():
    with pytest.raises(ValueError, match="num_heads=3 must be a positive divisor of dim=8"):
        build_fusion({"type": "fusion/attention", "dim": 8, "num_heads": 3}, num_modalities=2)


def test_gated_fusion_gates_each_feature():
    """One softmax over modalities per feature (the GMU's vector gate), not one per modality."""
    fusion = build_fusion({"type": "fusion/gated", "dim": 8}, num_modalities=3)
    towers = _towers(_fusion_inputs())
    fusion(towers, _fusion_inputs()["present"])
    assert tuple(fusion.gate.kernel.shape)[-1] == 3 * 8


def test_temporal_audio_cnn_convolves_over_time_only():
    """Mel bands are channels: a token sees only nearby frames, and each block halves the frames."""
    tower = build_tower({"type": "audio/temporal_cnn", "filters": [8, 8], "kernel_size": 3, "dim": 4})
    x = RNG.standard_normal((2, 24, 10)).astype("float32")
    base = np.asarray(tower(x)["sequence"])
    assert base.shape == (2, 6, 4)
    later = x.copy()
    later[:, 16:] += 5.0  # frames 16.. reach only tokens 3.. through two k=3 convs and 2x pools
    out = np.asarray(tower(later)["sequence"])
    np.testing.assert_allclose(out[:, :3], base[:, :3], atol=1e-6)
    assert not np.allclose(out[:, 4:], base[:, 4:])


def test_conv_tower_needs_a_block():
    with pytest.raises(ValueError, match="AudioTemporalCNN needs at least one block of filters"):
        build_tower({"type": "audio/temporal_cnn", "filters": [], "dim": 4})


@pytest.mark.parametrize("key", sorted(HEAD_CASES))
def test_head(key, tmp_path):
    out = run_part_test(
        lambda dtype=None: build_head({"name": "head", "type": key, **HEAD_CASES[key]}, dtype=dtype),
        {"x": RNG.standard_normal((BATCH, 8), dtype="float32")}, lambda layer, ins: layer(ins["x"]),
        tmp_path, expect_float32=True,
    )
    assert out.shape == (BATCH, HEAD_CASES[key]["units"])
    if key == "classification":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
