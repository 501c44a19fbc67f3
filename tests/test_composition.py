"""keras-hub-style composition (issue 23, item 2): a task over a backbone and a preprocessor built
by hand, ``from_preset`` for the backbone, the preprocessor and every task, architecture-only
backbone configs, and the docstring examples of the new entry points."""

import keras
import numpy as np
import pytest

import mmkeras
from mmkeras.models import ContrastiveModel, MultimodalBackbone, MultimodalClassifier, MultimodalVAE, Task
from mmkeras.models.config import resolve_backbone_config, resolve_config
from mmkeras.preprocessing import Preprocessor
from tests.helpers import run_docstring_example

# A tiny image + text architecture: a preset config written out by hand.
ARCHITECTURE = {
    "modalities": {
        "image": {"preprocessing": {"height": 16, "width": 16},
                  "tower": {"type": "image/cnn", "filters": [4], "dim": 8}},
        "text": {"preprocessing": {"sequence_length": 8, "vocab_size": 50},
                 "tower": {"type": "text/transformer", "dim": 8, "num_layers": 1, "num_heads": 2}},
    },
    "fusion": {"type": "fusion/concat", "dim": 8},
    "seed": 0,
}
TASK_KEYS = ("heads", "training", "name", "description", "contrastive", "vae")


@pytest.fixture(scope="module")
def raw_examples():
    (x, y), _ = mmkeras.datasets.synthetic(num_classes=2, num_train=12, num_test=2, modalities=("image", "text"),
                                           image_size=16, seed=3)
    return x, y


def test_classifier_composed_by_hand_fits_saves_and_reloads(raw_examples, tmp_path):
    x, y = raw_examples
    backbone = MultimodalBackbone(resolve_backbone_config(ARCHITECTURE))
    preprocessor = Preprocessor({"image": {"height": 16, "width": 16}, "text": {"sequence_length": 8,
                                                                               "vocab_size": 50}})
    model = MultimodalClassifier(backbone=backbone, preprocessor=preprocessor, num_classes=2,
                                 training={"batch_size": 4}, name="composed")
    assert model.preprocessor is preprocessor and model.backbone is backbone
    assert model.mm_config["heads"][0]["units"] == 2 and model.mm_config["training"]["batch_size"] == 4
    model.compile()
    model.fit(x, y, epochs=1, verbose=0)  # raw bytes and strings: the vocabulary is learned here
    assert not preprocessor.needs_adapt
    before = model.predict(x, verbose=0)
    path = tmp_path / "composed.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is MultimodalClassifier and loaded.name == "composed"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, atol=1e-6)


def test_a_preprocessor_that_does_not_fit_the_backbone_is_refused():
    backbone = MultimodalBackbone(resolve_backbone_config(ARCHITECTURE))
    wrong_size = Preprocessor({"image": {"height": 20, "width": 16}, "text": {"sequence_length": 8}})
    with pytest.raises(ValueError, match=r"preprocessor gives feature 'image' as \(\(20, 16, 3\).*backbone takes"):
        MultimodalClassifier(backbone=backbone, preprocessor=wrong_size, num_classes=2)
    with pytest.raises(ValueError, match=r"preprocessor takes modalities \['image'\] but the backbone takes"):
        MultimodalClassifier(backbone=backbone, preprocessor=Preprocessor({"image": {}}), num_classes=2)
    with pytest.raises(ValueError, match="preprocessor must be a mmkeras Preprocessor"):
        MultimodalClassifier(backbone=backbone, preprocessor="yes", num_classes=2)


def test_composition_errors_name_what_is_missing():
    unfused = MultimodalBackbone(resolve_backbone_config({**ARCHITECTURE, "fusion": None}))
    with pytest.raises(ValueError, match="a classifier needs a backbone with output 'fused'"):
        MultimodalClassifier(backbone=unfused, preprocessor=False, num_classes=2)
    backbone = MultimodalBackbone(resolve_backbone_config(ARCHITECTURE))
    with pytest.raises(ValueError, match="needs at least one head"):
        MultimodalClassifier(backbone=backbone, preprocessor=False)
    with pytest.raises(ValueError, match="not both"):
        MultimodalClassifier({"heads": []}, backbone=backbone, num_classes=2)
    with pytest.raises(ValueError, match="from_preset"):
        MultimodalClassifier(num_classes=2)


def test_backbone_config_holds_the_architecture_only():
    preset = {**ARCHITECTURE, "name": "p", "heads": [{"name": "scores", "units": 2}], "training": {"batch_size": 4}}
    backbone = MultimodalBackbone(resolve_config(preset))  # a task's whole preset: its task keys stay with it
    config = backbone.get_config()["config"]
    assert not set(config) & set(TASK_KEYS), sorted(config)
    # A backbone saved by an earlier mmkeras held the whole preset; it still loads, without the task keys.
    old = {"config": {**config, "heads": preset["heads"], "training": preset["training"], "name": "p"},
           "name": "backbone"}
    assert sorted(MultimodalBackbone.from_config(old).get_config()["config"]) == sorted(config)
    task = mmkeras.build_model("image_small", num_classes=2, preprocessor=False, compile=False)
    assert not set(task.backbone.get_config()["config"]) & set(TASK_KEYS)
    assert {"heads", "training", "name"} <= set(task.get_config()["config"])


def test_backbone_and_preprocessor_from_preset_match_the_task_from_preset():
    backbone = MultimodalBackbone.from_preset("image_audio_small")
    preprocessor = Preprocessor.from_preset("image_audio_small")
    task = MultimodalClassifier.from_preset("image_audio_small", num_classes=3, compile=False)
    assert backbone.get_config()["config"] == task.backbone.get_config()["config"]
    assert preprocessor.config == task.preprocessor.config
    assert backbone.count_params() == task.backbone.count_params()
    composed = MultimodalClassifier(backbone=backbone, preprocessor=preprocessor, num_classes=3)
    assert composed.count_params() == task.count_params()
    assert sorted(MultimodalBackbone.from_preset("image_audio_vae_small").output) == [
        "audio_pooled", "audio_sequence", "image_pooled", "image_sequence"]  # a VAE's backbone: no fusion


@pytest.mark.parametrize("cls, preset, kwargs", [
    (MultimodalClassifier, "image_small", {"num_classes": 3}),
    (ContrastiveModel, "av_contrastive_small", {}),
    (MultimodalVAE, "image_audio_vae_small", {"vae": {"latent_dim": 4}}),
])
def test_every_task_has_from_preset(cls, preset, kwargs):
    model = cls.from_preset(preset, preprocessor=False, **kwargs)
    assert type(model) is cls and model.optimizer is not None  # compiled with the preset's defaults
    built = mmkeras.build_model(preset, preprocessor=False, **kwargs)  # the thin entry point: the same task
    assert type(built) is cls and built.mm_config == model.mm_config


def test_from_preset_refuses_a_preset_of_another_task():
    with pytest.raises(ValueError, match="a contrastive model"):
        ContrastiveModel.from_preset("image_small", preprocessor=False)
    with pytest.raises(ValueError, match="Unknown preset key"):
        MultimodalClassifier.from_preset("image_audio_vae_small", num_classes=2, preprocessor=False)
    with pytest.raises(ValueError, match="Unknown preset 'nope'"):
        Preprocessor.from_preset("nope")


@pytest.mark.parametrize("obj", [MultimodalBackbone.from_preset, Preprocessor.from_preset,
                                 MultimodalClassifier.from_preset, Task.from_preset,
                                 MultimodalBackbone.modality_vectors.fget, MultimodalClassifier.auxiliary_head,
                                 MultimodalBackbone.tower_outputs.fget, MultimodalBackbone.fuse])
def test_from_preset_docstring_examples_run(obj):
    namespace = {"mmkeras": mmkeras, "MultimodalBackbone": MultimodalBackbone, "Preprocessor": Preprocessor,
                 "MultimodalClassifier": MultimodalClassifier}
    run_docstring_example(obj, namespace)


def test_contrastive_model_composed_on_a_backbone_without_fusion():
    backbone = MultimodalBackbone(resolve_backbone_config({**ARCHITECTURE, "fusion": None}))
    model = ContrastiveModel(backbone=backbone, preprocessor=False, contrastive={"dim": 4})
    assert model.backbone is backbone and model.mm_config["contrastive"]["dim"] == 4
    assert sorted(model.output) == ["image_embedding", "text_embedding"]
    with pytest.raises(ValueError, match="no fusion block"):
        ContrastiveModel(backbone=MultimodalBackbone(resolve_backbone_config(ARCHITECTURE)), preprocessor=False)
