"""Multimodal VAE: its layers' contract, the product of experts' algebra, the subset ELBO on real
AV-digits pairs, embed/reconstruct/generate, KL annealing state, .keras and the exported `embed`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.evaluation.features import remove_modality
from mmkeras.layers import FeatureDecoder, GaussianEncoder, ProductOfExperts
from mmkeras.layers.gaussian import gaussian_kl
from mmkeras.models.vae_config import subset_list
from tests._av_helpers import TINY_AUDIO, TINY_IMAGE, av_subset
from tests.helpers import run_part_test
from tests.part_cases import RNG


def tiny_vae(**vae):
    return {"name": "tiny_vae", "modalities": {"image": dict(TINY_IMAGE), "audio": dict(TINY_AUDIO)},
            "vae": {"latent_dim": 8, "hidden_units": 16, "decoder_filters": [8, 4], "kl_anneal_steps": 10, **vae},
            "training": {"learning_rate": 3e-3}}


@pytest.fixture(scope="module")
def pairs():
    return av_subset(32)


@pytest.fixture(scope="module")
def features(pairs):
    """The 32 pairs' features (every tiny_vae variant preprocesses alike): built once, copied per test."""
    model = mmkeras.build_model(tiny_vae(), seed=0)
    ready = model.preprocess(pairs[0])
    return lambda: {k: np.array(v) for k, v in ready.items()}


@pytest.mark.parametrize("shape", [(28, 28, 1), (61, 40), (5,)])
def test_feature_decoder_part(shape, tmp_path):
    out = run_part_test(lambda dtype=None: FeatureDecoder(shape, filters=[8, 4], standardize=True, dtype=dtype),
                        {"z": RNG.standard_normal((3, 4), dtype="float32")}, lambda layer, ins: layer(ins["z"]),
                        tmp_path, expect_float32=True)
    assert out.shape == (3,) + shape


def test_gaussian_encoder_part(tmp_path):
    run_part_test(lambda dtype=None: GaussianEncoder(4, hidden_units=8, dtype=dtype),
                  {"x": RNG.standard_normal((3, 8), dtype="float32")},
                  lambda layer, ins: keras.ops.concatenate(layer(ins["x"]), axis=-1), tmp_path, expect_float32=True)


def test_product_of_experts_is_the_gaussian_product_with_a_prior():
    mu = [np.array([[1.0, -2.0]] * 3, "float32"), np.array([[3.0, 0.5]] * 3, "float32")]
    log_var = [np.log(np.array([[0.5, 2.0]] * 3, "float32")), np.log(np.array([[0.25, 1.0]] * 3, "float32"))]
    present = np.array([[1, 1], [0, 1], [0, 0]], "float32")
    mean, lv = (np.asarray(t) for t in ProductOfExperts()(mu, log_var, present))
    t0, t1 = 1 / 0.5, 1 / 0.25  # first latent axis: precisions 2 and 4, prior 1
    assert mean[0, 0] == pytest.approx((t0 * 1.0 + t1 * 3.0) / (1 + t0 + t1))
    assert np.exp(lv[0, 0]) == pytest.approx(1 / (1 + t0 + t1))
    assert mean[1, 0] == pytest.approx(t1 * 3.0 / (1 + t1))  # the absent expert contributes nothing
    np.testing.assert_allclose(mean[2], 0.0)  # nothing present: the prior N(0, I)
    np.testing.assert_allclose(lv[2], 0.0)
    assert float(gaussian_kl(mean[2:], lv[2:])[0]) == pytest.approx(0.0)


def test_subset_lists():
    assert subset_list(2, "mvae") == [(0, 1), (0,), (1,)]
    assert subset_list(3, "mvae") == [(0, 1, 2), (0,), (1,), (2,)]
    assert subset_list(3, "all") == [(0, 1, 2), (0, 1), (0, 2), (1, 2), (0,), (1,), (2,)]


def test_vae_preset_validation():
    with pytest.raises(ValueError, match="Unknown vae option"):
        mmkeras.build_model(tiny_vae(latent=3))
    with pytest.raises(ValueError, match="no fusion block"):
        mmkeras.build_model({**tiny_vae(), "fusion": {"type": "fusion/concat"}})
    with pytest.raises(ValueError, match="drop 'modality_dropout'"):
        mmkeras.build_model({**tiny_vae(), "modality_dropout": 0.3})
    with pytest.raises(ValueError, match="vae.subsets must be one of"):
        mmkeras.build_model(tiny_vae(subsets="some"))
    with pytest.raises(ValueError, match=r"vae.encoder_input must be one of \('sequence', 'pooled'\), got 'flat'"):
        mmkeras.build_model(tiny_vae(encoder_input="flat"))
    with pytest.raises(ValueError, match="vae.cross_decoder_gradient must be true or false, got 'no'"):
        mmkeras.build_model(tiny_vae(cross_decoder_gradient="no"))
    with pytest.raises(ValueError, match="needs a modality it can decode"):
        mmkeras.build_model({"modalities": {"text": {"tower": {"type": "text/cnn"}}}, "vae": {}})
    model = mmkeras.build_model(tiny_vae(reconstruction_weights={"audio": 0.5}))
    assert isinstance(model, mmkeras.MultimodalVAE) and model.heads == []


def test_subset_elbo_on_real_pairs(features):
    """Absent modalities enter no term; the loss falls on real pairs; KL annealing counts steps."""
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model(tiny_vae(), seed=0)
    features = features()
    model.adapt(features)
    audio = model.get_layer("audio_decoder")
    rows = features["audio"][features["present"][:, 1] > 0]
    assert float(audio.offset.numpy()) == pytest.approx(rows.mean(), rel=1e-4)
    assert float(audio.scale.numpy()) == pytest.approx(rows.std(), rel=1e-4)

    partial = remove_modality(features, model.modalities, "image")
    partial["present"][:4] = features["present"][:4]  # rows 0-3 complete, the rest audio only
    terms = model.elbo_terms(partial, model(partial, training=True))
    assert [t[0] for t in terms] == [(0, 1), (0,), (1,)]
    for _subset, _valid, nll, kl in terms:
        np.testing.assert_array_equal(np.asarray(nll["image"])[4:], 0.0)  # absent image: no reconstruction term
        assert np.all(np.asarray(nll["audio"])[:] > 0) and np.all(np.asarray(kl) >= 0)
    np.testing.assert_array_equal(np.asarray(terms[1][1]), [1] * 4 + [0] * 28)  # image-only ELBO: complete rows

    assert float(model.kl_weight()) == 0.0
    losses = [model.train_on_batch(features, return_dict=True)["loss"] for _ in range(25)]
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < losses[0] - 100, losses
    assert float(model.kl_step.numpy()) == 25 and float(model.kl_weight()) == 1.0  # 10 annealing steps
    with pytest.raises(ValueError, match="without y"):
        model.fit(features, np.zeros(32))


def test_adapt_from_a_manifest_learns_the_vocabulary_from_every_row(tmp_path):
    """Decoder statistics come from the first max_examples rows, the text state from the whole column."""
    (x, _), _ = mmkeras.datasets.synthetic(num_classes=2, num_train=4, num_test=0, modalities=("image", "text"))
    words = ["alpha", "beta", "gamma", "zebra"]
    lines = ["image,text"]
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(x["image"][i])
        lines.append(f"{i}.png,{words[i]} word")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    model = mmkeras.build_model({"name": "image_text_vae", "modalities": {
        "image": {"preprocessing": {"height": 8, "width": 8, "channels": 1, "normalize": "minus_one_one"},
                  "tower": {"type": "image/cnn", "filters": [4], "dim": 8}},
        "text": {"preprocessing": {"sequence_length": 4, "vocab_size": 50},
                 "tower": {"type": "text/cnn", "embedding_dim": 4, "filters": 4, "dim": 8}}},
        "vae": {"latent_dim": 4, "hidden_units": 8, "decoder_filters": [4]}})
    assert model.decoded == ["image"]
    model.adapt(tmp_path / "m.csv", max_examples=2)
    assert "zebra" in model.preprocessor.text_vectorizer.get_vocabulary()  # row 4, past max_examples
    assert model.get_layer("image_decoder").statistics_set()  # a Gaussian decoder (standardised pixels)


def test_embed_reconstruct_generate_and_round_trips(pairs, tmp_path):
    x, _ = pairs
    model = mmkeras.build_model(tiny_vae(), seed=0)
    model.fit(x, epochs=1, batch_size=16, verbose=0)  # raw inputs: adapt runs on the first fit
    assert model.get_layer("audio_decoder").statistics_set()
    features = model.preprocess(x)
    out = model.predict(features, verbose=0)
    # Any subset: the image alone gives the image expert times the prior.
    alone = model.embed(remove_modality(features, model.modalities, "audio"))
    precision = np.exp(-out["image_log_var"])
    np.testing.assert_allclose(alone["embedding"], precision * out["image_mean"] / (1 + precision), atol=1e-5)
    np.testing.assert_array_equal(alone["present"][:, 1], 0.0)

    recon = model.reconstruct(features)
    assert recon["image"].shape == (32, 28, 28, 1) and recon["audio"].shape == features["audio"].shape
    assert recon["image"].min() >= 0 and recon["image"].max() <= 1
    from_audio = model.generate({"audio": x["audio"]}, target="image")  # a missing key counts as absent
    np.testing.assert_allclose(model.generate(features, target="image"), from_audio, atol=1e-5)  # own input ignored
    np.testing.assert_allclose(model.generate(features), from_audio, atol=1e-5)  # default: first decoded, image
    assert not np.allclose(from_audio, recon["image"], atol=1e-3)
    # Refinement: the generated image enters as observed beside the audio, the joint posterior is decoded.
    observed = {**features, "image": from_audio, "present": np.ones_like(features["present"])}
    np.testing.assert_allclose(model.generate(features, target="image", refine_steps=1),
                               model.reconstruct(observed)["image"], atol=1e-5)
    mode = model.generate(features, target="image", estimate="mode")
    np.testing.assert_array_equal(mode, (from_audio > 0.5).astype("float32"))  # Bernoulli pixels: 0 or 1
    np.testing.assert_allclose(model.generate(features, target="audio", estimate="mode"),
                               model.generate(features, target="audio"), atol=1e-6)  # a Gaussian's mode: its mean
    with pytest.raises(ValueError, match="refine_steps must be an integer >= 0, got -1"):
        model.generate(features, target="image", refine_steps=-1)
    with pytest.raises(ValueError, match=r"estimate must be one of \('mean', 'mode'\), got 'median'"):
        model.generate(features, target="image", estimate="median")
    with pytest.raises(ValueError, match="example 0 has no modality other than 'image'"):
        model.generate({"image": x["image"][:2]}, target="image")
    with pytest.raises(ValueError, match="target must be a decoded modality"):
        model.generate(features, target="text")

    model.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    assert float(loaded.kl_step.numpy()) == float(model.kl_step.numpy()) == 2  # annealing resumes where it was
    np.testing.assert_allclose(loaded.reconstruct(features)["audio"], recon["audio"], atol=1e-4)

    raw = {"image": np.array([x["image"][0], b"", x["image"][2]], dtype=object),
           "audio": np.array([x["audio"][0], x["audio"][1], b""], dtype=object)}
    local = model.embed(raw)
    path = mmkeras.export_saved_model(model, tmp_path / "vae", warmup=False)
    served = tf.saved_model.load(path)
    assert {"embed", "serving_default", "features"} <= set(served.signatures)
    got = served.signatures["embed"](image=tf.constant(list(raw["image"])), audio=tf.constant(list(raw["audio"])))
    np.testing.assert_allclose(got["embedding"].numpy(), local["embedding"], atol=1e-4)
    np.testing.assert_array_equal(got["present"].numpy(), [[1, 1], [0, 1], [1, 0]])


def test_private_latents_style_from_the_prior_in_cross_terms_and_generation(features, tmp_path):
    """private_dim: decoders read [z, w_m]; cross terms and generation take w_m from the prior."""
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model(tiny_vae(private_dim=3), seed=0)
    features = features()
    model.adapt(features)
    out = model(features, training=False)
    assert out["image_private_mean"].shape == (32, 3) and out["audio_private_log_var"].shape == (32, 3)
    assert model.get_layer("image_decoder").input.shape[-1] == 8 + 3
    kl = np.asarray(model.private_kl(features, out))
    expected = sum(np.asarray(gaussian_kl(out[f"{m}_private_mean"], out[f"{m}_private_log_var"])) for m in
                   ("image", "audio"))
    np.testing.assert_allclose(kl, expected, rtol=1e-5)
    history = [model.train_on_batch(features, return_dict=True) for _ in range(5)]
    assert all(np.isfinite(h["loss"]) and h["private_kl"] >= 0 for h in history)

    # Generation: z from the audio alone, the image's private latent at the prior mean (0) or sampled.
    generated = model.generate(features, target="image")
    z = model.embed(remove_modality(features, model.modalities, "image"))["embedding"]
    np.testing.assert_allclose(generated, model.decode("image", z), atol=1e-5)
    styled = model.generate(features, target="image", style_seed=1)
    np.testing.assert_allclose(styled, model.generate(features, target="image", style_seed=1), atol=1e-6)
    assert not np.allclose(styled, generated, atol=1e-4)
    w = np.random.default_rng(1).standard_normal((32, 3)).astype("float32")
    np.testing.assert_allclose(styled, model.decode("image", z, w), atol=1e-5)
    # Reconstruction with the image present uses its own private latent (not the prior mean).
    assert not np.allclose(model.reconstruct(features)["image"], model.decode("image", out["embedding"]), atol=1e-4)

    model.save(tmp_path / "private.keras")
    loaded = keras.saving.load_model(tmp_path / "private.keras")
    np.testing.assert_allclose(loaded.generate(features, target="image"), generated, atol=1e-5)
    with pytest.raises(ValueError, match="vae.private_dim must be an integer >= 0"):
        mmkeras.build_model(tiny_vae(private_dim=-1))


def test_experts_of_decoded_modalities_read_the_flattened_token_sequence(features):
    """encoder_input "sequence": the image/audio experts see the tower's tokens in order, not their mean."""
    model = mmkeras.build_model(tiny_vae(), seed=0)
    for m in ("image", "audio"):
        tokens = model.backbone.output[f"{m}_sequence"].shape
        assert model.get_layer(f"{m}_encoder").input.shape[-1] == tokens[1] * tokens[2] > tokens[2]
    features = features()
    # Swapping two tokens changes what the expert sees (a mean over tokens would not).
    out = model.backbone(features)
    tokens = np.asarray(out["image_sequence"])
    swapped = tokens[:, ::-1]
    encoder, flatten = model.get_layer("image_encoder"), model.get_layer("image_flatten")
    assert not np.allclose(np.asarray(encoder(flatten(tokens))[0]), np.asarray(encoder(flatten(swapped))[0]),
                           atol=1e-4)
    pooled = mmkeras.build_model(tiny_vae(encoder_input="pooled"), seed=0)
    assert pooled.get_layer("image_encoder").input.shape[-1] == pooled.backbone.output["image_pooled"].shape[-1]
    assert not any(layer.name.endswith("_flatten") for layer in pooled.layers)


def test_a_saved_config_without_the_newer_options_loads_as_it_was_built():
    """Files written before encoder_input / cross_decoder_gradient existed keep their architecture."""
    old = mmkeras.build_model(tiny_vae(encoder_input="pooled", cross_decoder_gradient=True), seed=0)
    config = old.get_config()
    for key in ("encoder_input", "cross_decoder_gradient"):
        del config["config"]["vae"][key]
    loaded = mmkeras.MultimodalVAE.from_config(config)
    assert {k: loaded.mm_config["vae"][k] for k in ("encoder_input", "cross_decoder_gradient")} == {
        "encoder_input": "pooled", "cross_decoder_gradient": True}
    loaded.set_weights(old.get_weights())  # same variables, same shapes


@pytest.mark.parametrize("cross_decoder_gradient", [False, True])
def test_cross_terms_train_the_decoder_only_when_asked(features, cross_decoder_gradient):
    """The image decoded from the audio alone: its NLL's gradient reaches the audio expert, and the
    image decoder only with cross_decoder_gradient (else the decoder learns to blur what audio leaves open)."""
    model = mmkeras.build_model(tiny_vae(cross_decoder_gradient=cross_decoder_gradient), seed=0)
    features = features()
    model.adapt(features)
    decoder, audio_expert = model.get_layer("image_decoder"), model.get_layer("audio_encoder")
    with tf.GradientTape() as tape:
        terms = model.elbo_terms(features, model(features, training=True))
        audio_alone = next(nll for subset, _, nll, _ in terms if subset == (1,))
        cross = tf.reduce_sum(audio_alone["image"])
    grads = tape.gradient(cross, decoder.trainable_variables + audio_expert.trainable_variables)
    to_decoder, to_expert = grads[:len(decoder.trainable_variables)], grads[len(decoder.trainable_variables):]
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in to_expert)
    reached = [g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in to_decoder]
    assert all(reached) if cross_decoder_gradient else not any(reached)
