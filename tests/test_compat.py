"""Compatibility paths (mmkeras/compat.py): each old name, option or file layout still honoured."""

import keras

import mmkeras
from mmkeras import compat
from tests.helpers import run_docstring_example
from tests.test_vae import tiny_vae


def test_compat_docstring_examples_run():
    run_docstring_example(compat.legacy_vae_config)


def test_vae_config_saved_before_its_options_existed_loads_with_the_old_behaviour():
    model = mmkeras.build_model(tiny_vae())
    config = keras.saving.serialize_keras_object(model)
    for key in compat.LEGACY_VAE_OPTIONS:  # what an older mmkeras wrote: no such key
        del config["config"]["config"]["vae"][key]
    loaded = keras.saving.deserialize_keras_object(config)
    assert {k: loaded.mm_config["vae"][k] for k in compat.LEGACY_VAE_OPTIONS} == compat.LEGACY_VAE_OPTIONS
