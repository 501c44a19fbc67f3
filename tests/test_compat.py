"""Compatibility paths (mmkeras/compat.py): each old name, option or file layout still honoured."""

import keras
import pytest

import mmkeras
from mmkeras import compat
from tests.helpers import run_docstring_example
from tests.test_vae import tiny_vae


def test_vae_config_saved_before_its_options_existed_loads_with_the_old_behaviour():
    model = mmkeras.build_model(tiny_vae())
    config = keras.saving.serialize_keras_object(model)
    for key in compat.LEGACY_VAE_OPTIONS:  # what an older mmkeras wrote: no such key
        del config["config"]["config"]["vae"][key]
    loaded = keras.saving.deserialize_keras_object(config)
    assert {k: loaded.mm_config["vae"][k] for k in compat.LEGACY_VAE_OPTIONS} == compat.LEGACY_VAE_OPTIONS


def test_renamed_class_is_the_classifier_in_code_and_in_keras_files():
    assert mmkeras.MultimodalModel is mmkeras.MultimodalClassifier
    assert keras.saving.get_custom_objects()["mmkeras>MultimodalModel"] is mmkeras.MultimodalClassifier
    with pytest.raises(ValueError, match="'Task' is not an old name of MultimodalClassifier"):
        compat.renamed_class("Task", mmkeras.MultimodalClassifier)


def test_every_compat_docstring_example_runs():
    for obj in (compat.legacy_vae_config,):
        run_docstring_example(obj)
