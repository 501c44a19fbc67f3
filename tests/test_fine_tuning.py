"""Fine-tuning: freeze/unfreeze by blocks, per-tower learning rates, warm-up, the training keys' checks.

Tiny randomly initialised towers (the part cases) stand in for the pretrained ones:
what trains does not depend on where the weights came from.
"""

import keras
import numpy as np
import pytest

import mmkeras
from mmkeras.training.optimizers import scale_learning_rates
from mmkeras.training.schedules import WarmUpCosine
from tests.conftest import random_features
from tests.part_cases import TOWER_CASES


def _preset(training=None, text=True):
    """Image (tiny EfficientNet-Lite, BatchNorm) + text (tiny keras-hub BERT), concat fusion."""
    lite, _ = TOWER_CASES["image/efficientnet_lite"]
    bert, _ = TOWER_CASES["text/keras_hub"]
    modalities = {"image": {"preprocessing": {"height": 16, "width": 16, "channels": 3},
                            "tower": {"type": "image/efficientnet_lite", **lite, "drop_connect_rate": 0.0}}}
    if text:  # no dropout anywhere: two models given the same weights and batch take the same step
        bert = {**bert, "backbone": {**bert["backbone"], "config": {**bert["backbone"]["config"], "dropout": 0.0}}}
        modalities["text"] = {"preprocessing": {"sequence_length": 6, "vocab_size": 50},
                              "tower": {"type": "text/keras_hub", **bert}}
    return {"modalities": modalities, "fusion": {"type": "fusion/concat", "dim": 8},
            "training": {"optimizer": "sgd", "learning_rate": 0.1, "weight_decay": None, **(training or {})}}


def _step(model, seed=0):
    """One SGD step on random features; returns every weight before and after, by path."""
    x = random_features(model, batch=4, seed=seed)
    x["image"] = x["image"] * 4 + 2  # far from BatchNorm's initial moving statistics
    before = {w.path: np.asarray(w).copy() for w in model.weights}
    model.train_on_batch(x, np.arange(4) % 2)
    return before, {w.path: np.asarray(w) for w in model.weights}


def _changed(before, after, where):
    """Paths of the weights that changed: of a layer, or under a path prefix."""
    paths = {w.path for w in where.weights} if isinstance(where, keras.layers.Layer) else None
    return {p for p in before if (p in paths if paths is not None else p.startswith(where))
            and not np.array_equal(before[p], after[p])}


def test_freeze_trains_only_new_layers_and_keeps_batchnorm_statistics():
    model = mmkeras.build_model(_preset(), num_classes=2, compile=False)
    model.freeze("image")
    model.compile()
    tower = model.tower("image")
    assert [w.path for w in tower.trainable_weights] == ["image_tower/project/kernel", "image_tower/project/bias"]
    before, after = _step(model)
    assert _changed(before, after, "image_tower/") == {"image_tower/project/kernel", "image_tower/project/bias"}
    assert _changed(before, after, model.tower("text")) and _changed(before, after, "scores/")  # the rest trains


def test_unfreeze_top_blocks_trains_exactly_those_blocks():
    model = mmkeras.build_model(_preset(), num_classes=2, compile=False)
    groups = model.tower("image").layer_groups()  # stem, 3 MBConv blocks, head
    assert len(groups) == 5
    model.unfreeze("image", top_blocks=2)
    model.compile()
    before, after = _step(model)
    trained = {p.split("/")[1] for p in _changed(before, after, "image_tower/")}
    # The top two groups: the last block and the head (moving statistics change with them), and the projection.
    assert trained == {layer.name for group in groups[-2:] for layer in group if layer.weights} | {"project"}
    model.unfreeze("image")  # everything again
    assert len(model.tower("image").trainable_weights) == sum(
        len(layer.trainable_weights) for group in groups for layer in group) + 2


def test_frozen_text_tower_and_bert_pooler_never_train():
    model = mmkeras.build_model(_preset(training={"trainable_blocks": {"text": 1}}), num_classes=2)
    tower = model.tower("text")
    names = [group[0].name for group in tower.layer_groups()]
    assert "pooled_dense" not in names and names[-1] == "transformer_layer_0"
    before, after = _step(model)
    trained = {p.split("/")[0] for p in _changed(before, after, tower.backbone)}
    assert trained == {"transformer_layer_0"}  # top block only; embeddings frozen, pooled_dense never
    model.unfreeze("text")
    assert not any(w.path.startswith("text_tower/backbone/pooled_dense") for w in tower.trainable_weights)


def test_trainable_blocks_in_the_preset_survive_a_keras_reload(tmp_path):
    model = mmkeras.build_model(_preset(training={"trainable_blocks": {"image": 0}}), num_classes=2)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert [w.path for w in loaded.tower("image").trainable_weights] == [
        "image_tower/project/kernel", "image_tower/project/bias"]


def test_freeze_and_unfreeze_calls_survive_a_keras_reload(tmp_path):
    model = mmkeras.build_model(_preset(), num_classes=2)
    model.freeze("image")
    model.unfreeze("text", top_blocks=1)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    for m in ("image", "text"):
        assert [w.path for w in loaded.tower(m).trainable_weights] == [
            w.path for w in model.tower(m).trainable_weights]
    assert loaded.mm_config["training"]["trainable_blocks"] == {"image": 0, "text": 1}
    model.unfreeze("image")  # all trainable again: recorded as None, which reloads as all
    model.save(tmp_path / "m2.keras")
    again = keras.saving.load_model(tmp_path / "m2.keras")
    assert len(again.tower("image").trainable_weights) == len(model.tower("image").trainable_weights) > 2


def test_tower_learning_rate_factor_scales_its_updates_exactly():
    keras.utils.set_random_seed(0)
    plain = mmkeras.build_model(_preset(), num_classes=2)
    scaled = mmkeras.build_model(_preset(training={"learning_rate_multipliers": {"image": 0.1, "text": 0.0}}),
                                 num_classes=2)
    scaled.set_weights(plain.get_weights())
    (b1, a1), (b2, a2) = _step(plain), _step(scaled)
    # The factor applies to the pretrained blocks; the projection a tower adds learns at the full rate.
    image, text = ({w.path for w in scaled._pretrained_weights(m)} for m in ("image", "text"))
    assert "image_tower/project/kernel" not in image
    for path in b1:
        delta, delta_scaled = a1[path] - b1[path], a2[path] - b2[path]
        if path in image and "moving" not in path:
            np.testing.assert_allclose(delta_scaled, 0.1 * delta, rtol=1e-4, atol=1e-7, err_msg=path)
        elif path in text:
            assert not delta_scaled.any(), path  # factor 0: the tower does not move
        elif "moving" not in path:
            np.testing.assert_allclose(delta_scaled, delta, rtol=1e-4, atol=1e-7, err_msg=path)
    assert any(np.abs(a1[p] - b1[p]).max() > 1e-4 for p in b1 if p.startswith("image_tower/"))


def test_learning_rate_factors_apply_to_adam_and_after_reload(tmp_path):
    """Adam normalises gradient scale away: the factor must act on the rate, and survive save/load."""
    preset = _preset(training={"optimizer": "adam", "learning_rate": 1e-2, "learning_rate_multipliers":
                               {"image": 0.0}}, text=False)
    model = mmkeras.build_model(preset, num_classes=2)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    for m in (model, loaded):
        before, after = _step(m)
        learnt = {p for p in _changed(before, after, m.tower("image")) if "moving" not in p}
        assert learnt == {"image_tower/project/kernel", "image_tower/project/bias"}  # the rest is at factor 0
        assert _changed(before, after, "scores/")


def test_weight_decay_follows_the_tower_factor():
    """AdamW's decoupled decay is scaled too: a tower at factor 0 does not shrink either."""
    preset = _preset(training={"optimizer": "adamw", "learning_rate": 1e-2, "weight_decay": 0.5,
                               "learning_rate_multipliers": {"image": 0.0}}, text=False)
    model = mmkeras.build_model(preset, num_classes=2)
    before, after = _step(model)
    frozen = {w.path for w in model._pretrained_weights("image")}
    assert frozen and not any(np.any(before[p] != after[p]) for p in frozen if "moving" not in p)
    decayed = model.get_layer("scores").weights[0].path  # the head decays and learns at the full rate
    assert np.any(before[decayed] != after[decayed])
    assert model.optimizer.weight_decay == 0.5  # restored after the grouped calls


def test_scaling_twice_replaces_the_factors():
    model = mmkeras.build_model(_preset(text=False), num_classes=2, compile=False)
    optimizer = keras.optimizers.SGD(0.1)
    scale_learning_rates(optimizer, [(model.tower("image").weights, 0.0)])
    scale_learning_rates(optimizer, [(model.tower("image").weights, 1.0)])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    before, after = _step(model)
    assert {p for p in _changed(before, after, "image_tower/block") if "moving" not in p}


def test_warm_up_then_cosine_schedule_and_its_config():
    schedule = WarmUpCosine(1e-3, warmup_steps=10, decay_steps=100, alpha=0.1)
    values = [float(schedule(s)) for s in (0, 4, 9, 10, 60, 110, 500)]
    np.testing.assert_allclose(values, [1e-4, 5e-4, 1e-3, 1e-3, 5.5e-4, 1e-4, 1e-4], rtol=1e-5)
    assert WarmUpCosine.from_config(schedule.get_config()).get_config() == schedule.get_config()
    model = mmkeras.build_model(_preset(training={"warmup_steps": 5}, text=False), num_classes=2)
    rate = model.optimizer._learning_rate
    assert isinstance(rate, WarmUpCosine) and rate.warmup_steps == 5 and rate.decay_steps is None
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)  # step 0: a fifth of the peak


@pytest.mark.parametrize("training, message", [
    ({"learning_rate_multipliers": {"audio": 0.1}}, r"names 'audio', which is not one of this preset's "
                                                    r"modalities \['image'\]"),
    ({"learning_rate_multipliers": {"image": -1}}, r"learning_rate_multipliers\['image'\] must be a number >= 0"),
    ({"learning_rate_multipliers": [0.1]}, r"learning_rate_multipliers must be a dict"),
    ({"trainable_blocks": {"image": 1.5}}, r"trainable_blocks\['image'\] must be an integer >= 0 \(0: frozen\)"),
    ({"warmup_steps": -3}, r"warmup_steps must be an integer >= 0, got -3"),
    ({"warmup": 3}, r"unknown key\(s\) \['warmup'\]"),
])
def test_bad_fine_tuning_keys_are_named(training, message):
    with pytest.raises(ValueError, match=message):
        mmkeras.build_model(_preset(training=training, text=False), num_classes=2)


def test_freeze_errors_name_the_modality_and_the_argument():
    model = mmkeras.build_model(_preset(text=False), num_classes=2, compile=False)
    with pytest.raises(ValueError, match=r"has no 'audio' tower; its modalities: \['image'\]"):
        model.freeze("audio")
    with pytest.raises(ValueError, match="top_blocks must be an integer >= 0 or None"):
        model.unfreeze("image", top_blocks=-1)


def test_a_tower_without_blocks_freezes_whole():
    model = mmkeras.build_model("image_small", num_classes=2, compile=False)
    model.freeze("image")
    assert not model.tower("image").trainable_weights and model.get_layer("scores").trainable_weights


def test_frozen_batchnorm_keeps_its_statistics_while_convolutions_train():
    lite, x = TOWER_CASES["image/efficientnet_lite"]
    tower = mmkeras.towers.build_tower({"type": "image/efficientnet_lite", **lite, "drop_connect_rate": 0.0,
                                        "freeze_batchnorm": True})
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, keras.layers.Dense(2)(tower(inputs)["pooled"]))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = x * 4 + 2  # far from the initial moving statistics
    np.testing.assert_allclose(np.asarray(model(x, training=True)), np.asarray(model(x, training=False)), atol=1e-6)
    before = {w.path: np.asarray(w).copy() for w in tower.weights}
    model.train_on_batch(x, np.ones((len(x), 2), "float32"))
    changed = {w.path for w in tower.weights if not np.array_equal(before[w.path], np.asarray(w))}
    assert changed and not [p for p in changed if "_bn/" in p]  # convolutions train, BatchNorm does not
    assert tower.get_config()["freeze_batchnorm"] is True


@pytest.mark.parametrize("text", [False, True])  # with text: a preprocessor holding unbuilt sublayers
def test_fit_builds_the_optimizer_first_so_the_train_step_is_traced_once(text):
    # Keras (TF backend, no strategy) creates the optimizer's variables inside the first traced
    # step, and a tf.function that creates variables is traced twice: a whole second trace.
    model = mmkeras.build_model(_preset({"optimizer": "adam"}, text=text), num_classes=2)
    traces, train_step = [], model.train_step
    model.train_step = lambda data: traces.append(1) or train_step(data)
    model.fit(random_features(model, batch=4), np.arange(4) % 2, epochs=2, batch_size=2, verbose=0)
    assert len(traces) == 1
    assert model.optimizer.iterations.numpy() == 4
    assert len(model.optimizer.variables) == 2 + 2 * len(model.trainable_variables)  # Adam's two slots each
