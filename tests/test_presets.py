"""Every preset builds, trains one step and round-trips through .keras (TensorFlow backend)."""

import copy
import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

import mmkeras
from tests.conftest import random_features
from tests.helpers import uses_pretrained_weights

REQUIRED = {"image_audio_text_small", "image_audio_small", "image_text_small", "audio_text_small",
            "image_small", "audio_small", "text_small", "reference_base", "reference_small"}


def test_list_presets_has_descriptions_and_required_names():
    presets = mmkeras.list_presets()
    assert set(presets) >= REQUIRED
    assert all(isinstance(d, str) and d for d in presets.values())


def test_benchmark_presets_are_registered_only_on_request():
    import subprocess
    import sys

    code = ("import mmkeras; before = set(mmkeras.list_presets()); mmkeras.presets.register_benchmark_presets(); "
            "after = set(mmkeras.list_presets()); print(sorted(after - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    added = set(json.loads(out.strip().splitlines()[-1].replace("'", '"')))
    assert {"reference_small", "reference_base", "av_gated_small", "text_sst2_small"} <= added


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


def _reference_params(small):
    src = open(mmkeras_reference_path()).read().split("results = {")[0]
    src = src.replace("A = P.parse_args()", f"A = P.parse_args({['--small'] if small else []})")
    namespace = {}
    exec(compile(src, "reference_keras.py", "exec"), namespace)
    return namespace["build"]().count_params()


def mmkeras_reference_path():
    from tests.conftest import DATA_DIR

    path = DATA_DIR.parent / "bench" / "reference_keras.py"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.mark.parametrize("name,small", [("reference_small", True), ("reference_base", False)])
def test_reference_presets_match_hand_written_model(name, small):
    model = mmkeras.build_model(name, num_classes=10, compile=False)
    assert model.count_params() == _reference_params(small)


# Contrastive and VAE presets have no classification head: tests/test_contrastive.py and test_vae.py cover
# them. Presets with pretrained towers cost 2-8 minutes each here at full size (224x224 EfficientNet,
# 22.7M-parameter MiniLM) on the 2-core machine: tests/test_pretrained_presets.py builds, saves, reloads
# (without the weights packages) and exports the tri-modal one at a reduced input size,
# test_fine_tuning.py trains their towers.
CLASSIFIER_PRESETS = sorted(n for n, p in ((n, mmkeras.get_preset(n)) for n in mmkeras.list_presets())
                            if not {"contrastive", "vae"} & set(p) and not uses_pretrained_weights(p))


@pytest.mark.parametrize("name", CLASSIFIER_PRESETS)
def test_preset_trains_one_step_and_round_trips(name, tmp_path):
    model = mmkeras.build_model(name, num_classes=3)
    batch = 1 if name == "reference_base" else 2
    x = random_features(model, batch=batch)
    y = np.arange(batch) % 3
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    expected = model.predict(x, verbose=0)
    assert expected.shape == (batch, 3) and expected.dtype == np.float32
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, mmkeras.MultimodalModel)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert loaded.mm_config == model.mm_config
    clone = type(model).from_config(copy.deepcopy(model.get_config()))
    assert clone.count_params() == model.count_params() and clone.mm_config == model.mm_config


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


def test_a_benchmark_preset_not_registered_says_how_to_register_it(monkeypatch):
    from mmkeras.presets.registry import PRESETS

    monkeypatch.delitem(PRESETS, "av_gated_small", raising=False)
    with pytest.raises(ValueError, match=r"'av_gated_small' is a benchmark preset, registered only on request: "
                                         r"call mmkeras.presets.register_benchmark_presets\(\) first"):
        mmkeras.build_model("av_gated_small", num_classes=3)


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
