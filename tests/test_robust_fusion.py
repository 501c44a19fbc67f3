"""Fusion robust to a new speaker: learned late fusion, the robust presets, the speaker-held-out pairing."""

import numpy as np
import pytest

import mmkeras
from mmkeras.fusion import LateFusion
from tests._av_helpers import DATA_DIR, tiny_av_preset
from tests.part_cases import fusion_inputs, towers_from


def _late(**kwargs):
    fusion = LateFusion(num_modalities=3, dim=8, **kwargs)
    ins = fusion_inputs()
    return fusion, ins, towers_from(ins)


def test_late_fusion_ignores_an_absent_modalitys_input():
    fusion, ins, towers = _late()
    out = np.asarray(fusion(towers, ins["present"]))
    changed = [dict(t) for t in towers]
    for i in range(3):  # overwrite each modality's pooled vector where it is absent
        absent = ins["present"][:, i] == 0
        changed[i]["pooled"] = np.where(absent[:, None], 100.0, towers[i]["pooled"]).astype("float32")
    np.testing.assert_allclose(np.asarray(fusion(changed, ins["present"])), out, atol=1e-6)


def test_late_fusion_is_the_weighted_sum_of_per_modality_votes():
    fusion, ins, towers = _late()
    fusion(towers, ins["present"])
    fusion.log_weights.assign(np.log(np.array([1.0, 2.0, 0.5], "float32")))
    votes = [np.asarray(v(t["pooled"])) for v, t in zip(fusion.votes, towers)]
    expected = sum(w * ins["present"][:, i:i + 1] * votes[i] for i, w in enumerate((1.0, 2.0, 0.5)))
    np.testing.assert_allclose(np.asarray(fusion(towers, ins["present"])), expected, rtol=1e-5, atol=1e-6)
    # nothing mixes modalities: with only modality 1 present the output is its vote alone
    only = np.tile(np.array([[0.0, 1.0, 0.0]], "float32"), (3, 1))
    np.testing.assert_allclose(np.asarray(fusion(towers, only)), 2.0 * votes[1], rtol=1e-5, atol=1e-6)


def test_late_fusion_weights_train():
    model = mmkeras.build_model(tiny_av_preset("fusion/late"), num_classes=3, seed=0)
    rng = np.random.default_rng(0)
    x = {"image": rng.random((16, 28, 28, 1), dtype="float32"),
         "audio": rng.standard_normal((16, 61, 40), dtype="float32"), "present": np.ones((16, 2), "float32")}
    before = np.asarray(model.get_layer("fusion").log_weights).copy()
    model.fit(x, np.arange(16) % 3, epochs=2, batch_size=8, verbose=0)
    assert not np.allclose(np.asarray(model.get_layer("fusion").log_weights), before)


@pytest.mark.parametrize("preset", ["image_audio_robust_small", "av_robust_small"])
def test_robust_presets_build_with_cmvn_mfcc_late_fusion_and_unimodal_heads(preset):
    model = mmkeras.build_model(preset, num_classes=10, seed=0)
    config = model.mm_config
    audio = config["modalities"]["audio"]["preprocessing"]
    assert audio["cmvn"] is True and audio["n_mfcc"] == 13
    # The changes measured on the leave-one-speaker-out benchmark (benchmarks/README.md); VTLP helped the
    # library preset's audio alone on both seeds, not av_robust_small's.
    want = {"silence": 0.2, "vtlp": 0.1} if preset == "image_audio_robust_small" else {"silence": 0.2}
    assert audio["waveform_augment"] == want
    image_tower = config["modalities"]["image"]["tower"]
    assert image_tower["kernel_size"] == 5 and len(image_tower["filters"]) == 4
    assert config["modalities"]["audio"]["tower"]["type"] == "audio/temporal_cnn"  # audio alone 66-72% -> 81-82%
    assert config["fusion"]["type"] == "fusion/late" and config["modality_dropout"] == 0.3
    assert config["auxiliary_heads"] == {"loss_weight": 1.0} and len(model.auxiliary_heads) == 2
    assert model.input["audio"].shape[-1] == 13
    assert model.output.dtype == "float32"


# ---- the leave-one-speaker-out pairing -----------------------------------------------------------

def _need_data():
    if not (DATA_DIR / "fsdd" / "recordings").exists() or not (DATA_DIR / "mnist" / "mnist.npz").exists():
        pytest.skip(f"AV-digits data not found under {DATA_DIR}")


def test_speaker_pairing_uses_only_the_folds_speakers_and_is_deterministic():
    _need_data()
    from mmkeras.datasets.av_digits import av_digits_pairs

    train = av_digits_pairs("train", data_dir=DATA_DIR, speakers=["george", "lucas"])
    test = av_digits_pairs("test", data_dir=DATA_DIR, speakers=["theo"])
    assert {name.split("_")[1] for _, name, _ in train} == {"george", "lucas"}
    assert {name.split("_")[1] for _, name, _ in test} == {"theo"}
    assert all(int(name.split("_")[0]) == label for _, name, label in train + test)
    assert all(int(name[:-4].split("_")[2]) < 5 for _, name, _ in test)  # the test clips, index 0..4
    assert train == av_digits_pairs("train", data_dir=DATA_DIR, speakers=["lucas", "george"])
    # every speaker is the README protocol itself
    assert av_digits_pairs("test", data_dir=DATA_DIR) == av_digits_pairs(
        "test", data_dir=DATA_DIR, speakers=["george", "jackson", "lucas", "nicolas", "theo", "yweweler"])


def test_unknown_speaker_is_named():
    _need_data()
    from mmkeras.datasets.av_digits import av_digits_pairs

    with pytest.raises(ValueError, match=r"FSDD speakers \['george'.*got \['bob'\]"):
        av_digits_pairs("test", data_dir=DATA_DIR, speakers=["bob"])


def test_av_digits_pairs_a_split_with_the_named_speakers_only():
    _need_data()
    from mmkeras.datasets.av_digits import load_fsdd

    x, y = mmkeras.datasets.av_digits("test", data_dir=DATA_DIR, speakers=["george"])
    george = {data for name, data in load_fsdd(DATA_DIR).items() if "_george_" in name}
    assert len(y) == 10000 and all(audio in george for audio in x["audio"])
