"""Every library preset builds, trains one step and round-trips through .keras (TensorFlow backend).

The benchmarks' presets: tests/test_benchmark_presets.py."""

import json
import os
from pathlib import Path

import pytest

import mmkeras
from benchmarks.presets import BENCHMARK_PRESETS
from tests.helpers import classifier_presets, trains_one_step_and_round_trips

REQUIRED = {"image_audio_text_small", "image_audio_small", "image_text_small", "audio_text_small",
            "image_small", "audio_small", "text_small"}


def test_list_presets_has_descriptions_and_required_names():
    presets = mmkeras.list_presets()
    assert set(presets) >= REQUIRED
    assert all(isinstance(d, str) and d for d in presets.values())


def test_presets_are_json_serialisable_and_buildable_from_dict():
    for name in mmkeras.list_presets():
        preset = mmkeras.get_preset(name)
        assert json.loads(json.dumps(preset)) == preset
    model = mmkeras.build_model(mmkeras.get_preset("image_small"), num_classes=3)
    assert model.modalities == ["image"]


def test_unknown_preset_lists_known_names():
    with pytest.raises(ValueError, match="Known presets: .*image_audio_text_small"):
        mmkeras.build_model("no_such_preset", num_classes=3)


def test_overrides_and_bad_num_classes():
    model = mmkeras.build_model("image_audio_small", num_classes=5, fusion="fusion/attention", learning_rate=3e-4)
    assert model.mm_config["fusion"]["type"] == "fusion/attention"
    assert model.mm_config["fusion"]["dim"] == mmkeras.get_preset("image_audio_small")["fusion"]["dim"]
    assert model.mm_config["training"]["learning_rate"] == 3e-4
    with pytest.raises(ValueError, match="num_classes"):
        mmkeras.build_model("image_small", num_classes=1)
    with pytest.raises(ValueError, match="Unknown fusion block 'fusion/nope'.*fusion/gated"):
        mmkeras.build_model("image_audio_small", num_classes=3, fusion="fusion/nope")
    with pytest.raises(ValueError, match="needs at least one head"):
        mmkeras.build_model("image_small")


# Contrastive and VAE presets have no classification head: tests/test_contrastive.py and test_vae.py cover
# them. Presets with pretrained towers cost 2-8 minutes each here at full size (224x224 EfficientNet,
# 22.7M-parameter MiniLM) on the 2-core machine: tests/test_pretrained_presets.py builds, saves, reloads
# (without the weights packages) and exports the tri-modal one at a reduced input size,
# test_fine_tuning.py trains their towers.
CLASSIFIER_PRESETS = classifier_presets(n for n in mmkeras.list_presets() if n not in BENCHMARK_PRESETS)


@pytest.mark.parametrize("name", CLASSIFIER_PRESETS)
def test_preset_trains_one_step_and_round_trips(name, tmp_path):
    trains_one_step_and_round_trips(name, tmp_path)


def test_new_part_type_starts_from_its_defaults():
    # image_small's CNN has "filters"; the ViT does not take them.
    model = mmkeras.build_model("image_small", num_classes=3, modalities={"image": {"tower": {"type": "image/vit"}}},
                                compile=False)
    tower = model.mm_config["modalities"]["image"]["tower"]
    assert tower["type"] == "image/vit" and "filters" not in tower
    assert tower["dim"] == mmkeras.get_preset("image_small")["modalities"]["image"]["tower"]["dim"]
    # The same type keeps the preset's options and merges the new ones.
    model = mmkeras.build_model("image_small", num_classes=3, modalities={"image": {"tower": {"filters": [8, 16]}}},
                                compile=False)
    assert model.mm_config["modalities"]["image"]["tower"]["filters"] == [8, 16]
    transformer = mmkeras.build_model("image_audio_small", num_classes=3, fusion={"type": "fusion/transformer",
                                                                                  "num_layers": 1}, compile=False)
    back = mmkeras.build_model(transformer.mm_config, num_classes=3, fusion="fusion/concat", compile=False)
    assert "num_layers" not in back.mm_config["fusion"]


def test_class_names_is_an_attribute():
    model = mmkeras.build_model("image_small", class_names=["cat", "dog"], compile=False)
    assert model.class_names == ["cat", "dog"] and model.head_class_names("scores") == ["cat", "dog"]
    assert mmkeras.build_model("image_small", num_classes=3, compile=False).class_names == ["0", "1", "2"]
    with pytest.raises(ValueError, match="no head named 'nope'; heads: \\['scores'\\]"):
        model.head_class_names("nope")


def test_import_mmkeras_loads_no_keras_and_keras_still_finds_its_classes(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "m.keras"
    mmkeras.build_model("image_small", class_names=["a", "b"]).save(path)
    code = ("import sys, mmkeras\nloaded = [m for m in ('keras', 'tensorflow') if m in sys.modules]\n"
            "import keras\nmodel = keras.saving.load_model(sys.argv[1])\n"
            "print(loaded, type(model).__name__, model.class_names)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip().splitlines()[-1] == "[] MultimodalClassifier ['a', 'b']"
