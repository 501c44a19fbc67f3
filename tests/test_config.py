"""Preset validation: every key is checked, every option names what is allowed; the optimizer option works."""

import keras
import pytest

import mmkeras
from mmkeras.models import resolve_config


def _preset(**changes):
    preset = mmkeras.get_preset("image_text_small")
    preset["heads"] = [{"name": "scores", "units": 3}]
    for path, value in changes.items():
        node = preset
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return preset


@pytest.mark.parametrize("path, value, message", [
    ("colour", 1, r"Unknown preset key\(s\) \['colour'\]"),
    ("modalities.image.towr", {}, r"modalities.image: unknown key\(s\) \['towr'\]; allowed: \['augment', "),
    ("modalities.image.tower.filtres", [8], r"modalities.image.tower: unknown option\(s\) \['filtres'\] for tower "
                                            r"'image/cnn'; allowed: \['bn_momentum', 'bn_synchronized', "
                                            r"'bn_warm_start', 'dim', 'dropout', 'filters', 'kernel_size'\]"),
    ("modalities.image.tower.type", "image/cnnn", r"Unknown tower 'image/cnnn'. Known towers: "),
    ("modalities.image.augment", {"shear": 0.1}, r"modalities.image.augment: unknown key\(s\) \['shear'\]"),
    ("modalities.text.augment", {"word_dropout": 0.1, "swap": 1}, r"modalities.text.augment: unknown key\(s\) "),
    ("modalities.text.preprocessing.lenght", 8, r"Unknown text preprocessing option\(s\) \['lenght'\]"),
    ("fusion.dimm", 3, r"fusion: unknown option\(s\) \['dimm'\] for fusion block 'fusion/attention'; allowed: "),
    ("training.lr", 0.1, r"training: unknown key\(s\) \['lr'\]; allowed: \['batch_size', 'clipnorm', "),
    ("training.optimizer", "adamm", r"training.optimizer 'adamm' is not a Keras optimizer; known: \[.*'adamw'"),
    ("training.optimizer", {"class_name": "SGD", "config": {"momentom": 0.9}}, r"training.optimizer SGD: "),
    ("mixed_precision", "float8", r"mixed_precision must be one of"),
])
def test_unknown_keys_anywhere_name_the_key_and_the_allowed_ones(path, value, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(_preset(**{path: value}))


def test_unknown_head_option_is_named():
    preset = _preset()
    preset["heads"] = [{"name": "scores", "units": 3, "hiden_units": 8}]
    with pytest.raises(ValueError, match=r"head 'scores': unknown option\(s\) \['hiden_units'\] for head "
                                         r"'classification'; allowed: \['dropout', 'hidden_units', 'units'\]"):
        resolve_config(preset)


@pytest.mark.parametrize("optimizer, cls, extra", [
    ("sgd", keras.optimizers.SGD, {}),
    ({"class_name": "SGD", "config": {"momentum": 0.9, "learning_rate": 0.2}}, keras.optimizers.SGD,
     {"momentum": 0.9}),
    ("rmsprop", keras.optimizers.RMSprop, {}),
])
def test_the_optimizer_option_is_used(optimizer, cls, extra):
    model = mmkeras.build_model("image_small", num_classes=3, optimizer=optimizer, learning_rate=0.05,
                                weight_decay=0.01)
    assert type(model.optimizer) is cls
    expected_lr = 0.2 if isinstance(optimizer, dict) else 0.05  # the config's own value wins
    assert float(model.optimizer.learning_rate) == pytest.approx(expected_lr)
    assert model.optimizer.weight_decay == pytest.approx(0.01)
    for key, value in extra.items():
        assert getattr(model.optimizer, key) == pytest.approx(value)


def test_default_optimizer_is_adamw_with_the_preset_learning_rate():
    model = mmkeras.build_model("image_small", num_classes=3)
    assert type(model.optimizer) is keras.optimizers.AdamW
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
