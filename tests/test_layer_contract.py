"""Keras's layer contract for every public mmkeras layer, through one shared helper.

Every registered tower, fusion block and head, every class exported from
``mmkeras.layers``, the contrastive head and the two preprocessing layers
(``Preprocessor``, ``TextVectorizer``) run Keras's own ``run_layer_test``
(config and serialization round trips, ``build()`` creating all state, symbolic and
eager calls, a training step, mixed-precision dtypes), plus the extra checks of
:func:`tests.helpers.run_keras_layer_test`. Masks: sequence towers and sequence
layers use an incoming Keras mask; parts that take explicit masks say they do not
support Keras masks.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.fusion import FUSIONS
from mmkeras.heads import HEADS
from mmkeras.heads.contrastive import ContrastiveHead
from mmkeras.preprocessing import Preprocessor
from mmkeras.preprocessing.vocabulary import TextVectorizer
from mmkeras.towers import TOWERS, build_tower
from tests.helpers import KerasLayerCase, library_keys, run_keras_layer_test
from tests.part_cases import FUSION_CASES, HEAD_CASES, LAYER_CASES, RNG, TOWER_CASES, fusion_inputs, towers_from

LAYER_CLASSES = {name: getattr(mmkeras.layers, name) for name in mmkeras.layers.__all__}
LAYER_CLASSES["ContrastiveHead"] = ContrastiveHead
# Layers without weights: built at construction, like Keras's Dropout. ImageAugmentation
# is not: it builds Keras's random image layers, which Keras itself builds in build().
STATELESS = {"MaskedMeanPooling", "ModalityDropout", "SpecAugment", "AudioPerturbation", "AudioAugmentation",
             "WordDropout", "FoldWindows", "WindowPooling",
             "ProductOfExperts", "GaussianSample"}


def test_every_public_layer_has_a_case():
    assert set(LAYER_CASES) == set(LAYER_CLASSES)
    assert set(TOWER_CASES) == library_keys(TOWERS) and set(FUSION_CASES) == library_keys(FUSIONS)
    assert set(HEAD_CASES) <= set(HEADS.keys())


@pytest.mark.parametrize("key", sorted(TOWER_CASES))
def test_tower_contract(key):
    config, x = TOWER_CASES[key]
    run_keras_layer_test(TOWERS.get(key), config, x)


@pytest.mark.parametrize("key", sorted(FUSION_CASES))
def test_fusion_contract(key):
    ins = fusion_inputs()
    run_keras_layer_test(FUSIONS.get(key), {"num_modalities": 3, **FUSION_CASES[key]},
                         {"towers": towers_from(ins), "present": ins["present"]})


@pytest.mark.parametrize("key", sorted(HEAD_CASES))
def test_head_contract(key):
    run_keras_layer_test(HEADS.get(key), HEAD_CASES[key], RNG.standard_normal((3, 8), dtype="float32"))


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layer_contract(name):
    init_kwargs, data = LAYER_CASES[name]
    run_keras_layer_test(LAYER_CLASSES[name], init_kwargs, data, stateless=name in STATELESS)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_layers_without_weights_are_built_at_construction(name):
    init_kwargs, data = LAYER_CASES[name]
    layer = LAYER_CLASSES[name](**init_kwargs)
    assert layer.built == (name in STATELESS)
    layer(**data) if isinstance(data, dict) else layer(data)
    assert (not layer.weights) == (name in STATELESS or name == "ImageAugmentation")


@pytest.mark.parametrize("structure", ["list", "dict"])
def test_contrastive_head_takes_its_inputs_as_one_structure(structure):
    init_kwargs, data = LAYER_CASES["ContrastiveHead"]
    head = ContrastiveHead(**init_kwargs)
    expected = head(**data)
    packed = [data["pooled"], data["present"]] if structure == "list" else data
    for a, b in zip(head(packed), expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b))
    specs = keras.tree.map_structure(lambda x: keras.KerasTensor(x.shape, dtype=str(x.dtype)), packed)
    assert [tuple(s.shape) for s in head.compute_output_spec(specs)] == [(3, 4), (3, 4)]
    symbolic = ContrastiveHead(**init_kwargs)(specs)  # a fresh head builds from the one structure
    assert [tuple(s.shape) for s in symbolic] == [(3, 4), (3, 4)]


# ---- masks ------------------------------------------------------------------------------

SEQUENCE_TOWERS = ["audio/rnn", "audio/transformer", "text/rnn", "text/transformer", "text/cnn", "text/keras_hub"]


@pytest.mark.parametrize("key", SEQUENCE_TOWERS)
def test_sequence_towers_ignore_masked_steps(key):
    """With a Keras mask on the input, masked steps change neither the output mask nor ``pooled``."""
    config, x = TOWER_CASES[key]
    tower = build_tower({"type": key, **config})
    mask = np.ones(x.shape[:2], bool)
    mask[:, -2:] = False
    changed = x.copy()
    changed[:, -2:] = changed[:, -2:] * 0 + (7 if x.dtype.kind == "i" else 5.0)
    out = tower(x, mask=mask)
    out_changed = tower(changed, mask=mask)
    assert not np.any(np.asarray(out["mask"])[:, -1])  # the masked step's token is not valid
    if key not in ("text/cnn", "audio/transformer"):  # a conv stem mixes neighbours into valid tokens
        np.testing.assert_allclose(np.asarray(out_changed["pooled"]), np.asarray(out["pooled"]), atol=1e-5)


@pytest.mark.parametrize("key", ["audio/cnn", "audio/temporal_cnn"])
def test_conv_audio_towers_downsample_the_mask(key):
    config, x = TOWER_CASES[key]  # 20 frames, two 2x pools -> 5 tokens
    mask = np.zeros(x.shape[:2], bool)
    mask[0, :20] = True
    mask[1, :9] = True   # frames 0-8 -> tokens 0-2 (ceil)
    mask[2, :1] = True
    out = build_tower({"type": key, **config})(x, mask=mask)
    np.testing.assert_array_equal(np.asarray(out["mask"]), [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])


@pytest.mark.parametrize("key", ["image/cnn", "image/resnet", "image/vit", "image/efficientnet_lite",
                                 "image/keras_hub"])
def test_image_towers_declare_no_mask_support(key):
    assert build_tower({"type": key, **TOWER_CASES[key][0]}).supports_masking is False


@pytest.mark.parametrize("name", ["PositionEmbedding", "SpecAugment", "WordDropout", "TransformerEncoder"])
def test_sequence_layers_pass_the_mask_on(name):
    init_kwargs, data = LAYER_CASES[name]
    if data.ndim == 2:
        inputs = keras.Input(data.shape[1:], dtype="int32")
        masked = keras.layers.Masking(mask_value=0)(inputs)
    else:
        inputs = keras.Input(data.shape[1:])
        masked = keras.layers.Masking(mask_value=0.0)(inputs)
    out = LAYER_CLASSES[name](**init_kwargs)(masked)
    assert getattr(out, "_keras_mask", None) is not None, f"{name} dropped the mask"


# ---- preprocessing layers (string inputs: Keras's training step does not apply) ---------

def _raw_batch():
    from mmkeras.codecs import encode_png, encode_wav

    return {"image": tf.constant([encode_png(np.zeros((8, 8, 3), np.uint8)), b""]),
            "audio": tf.constant([b"", encode_wav(np.zeros(800), 8000)]), "text": tf.constant(["a b", ""])}


def test_preprocessor_contract():
    config = {"image": {"height": 8, "width": 8}, "text": {"vocabulary": ["a", "b"], "sequence_length": 4},
              "audio": {"sample_rate": 8000, "duration_s": 0.1, "n_mels": 8}}
    KerasLayerCase().run_layer_test(Preprocessor, {"modalities": config}, input_data={"raw": _raw_batch()},
                                     run_training_check=False)


def test_text_vectorizer_contract():
    KerasLayerCase().run_layer_test(
        TextVectorizer, {"max_tokens": 10, "vocabulary": ["a", "b"], "output_sequence_length": 4, "standardize": None},
        input_data=tf.constant(["a b", "c"]), run_training_check=False)
