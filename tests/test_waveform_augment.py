"""Training-only waveform augmentation (audio ``waveform_augment``): each perturbation, seeds, training only."""

import json
import warnings

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.codecs import encode_wav
from mmkeras.data.pipeline import RawAugmentationWarning, RawInputs
from mmkeras.preprocessing import Preprocessor
from mmkeras.preprocessing.waveform_augment import (
    draw_parameters,
    perturb_batch,
    perturb_waveform,
    vtlp_factors,
    warp_frequencies,
)
from mmkeras.training.shuffle import epoch_example_seeds, epoch_shuffle, set_epoch
from tests._av_helpers import TINY_AUDIO, av_subset, tiny_av_preset

RATE, N = 8000, 8000
SEED = tf.constant([0, 5], tf.int64)
ALL = {"speed": 0.2, "pitch": 0.2, "shift": 0.2, "silence": 0.2, "gain_db": 6.0, "noise_snr_db": 0.0, "vtlp": 0.1}


def _tone(length=6000, freq=440.0):
    x = np.zeros(N, np.float32)
    x[:length] = 0.3 * np.sin(2 * np.pi * freq * np.arange(length) / RATE)
    return x


def _perturb(x, length, options, seed=SEED):
    y, n = perturb_waveform(tf.constant(x), length, seed, options, RATE)
    return y.numpy(), int(n)


def _peak_hz(x):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * RATE / len(x)


def _draw(options, seed=SEED):
    return {k: float(v) for k, v in draw_parameters(seed, options, N).items()}


def test_speed_shortens_the_content_and_raises_the_pitch_together():
    options = {"speed": 0.3}
    factor = _draw(options)["speed"]
    assert factor != 1.0
    y, length = _perturb(_tone(), 6000, options)
    assert y.shape == (N,) and length == round(6000 / factor)
    assert not y[length + 1:].any()  # padded with silence after the (shorter or longer) content
    assert _peak_hz(y[:min(length, N)]) == pytest.approx(440.0 * factor, rel=0.02)


def test_pitch_moves_the_frequency_and_keeps_the_duration():
    options = {"pitch": 0.3}
    factor = _draw(options)["pitch"]
    y, length = _perturb(_tone(), 6000, options)
    assert length == 6000 and not y[6000:].any()
    assert _peak_hz(y[:6000]) == pytest.approx(440.0 * factor, rel=0.02)
    assert np.sqrt(np.mean(y[500:5500] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.15)  # loudness kept


def test_shift_moves_the_onset():
    x = np.zeros(N, np.float32)
    x[3000:5000] = 0.5  # the onset at 3000 stays inside the clip for any shift up to 0.3 * 8000
    for seed in ([0, 5], [0, 3]):  # one shift each way
        shift = int(_draw({"shift": 0.3}, seed)["shift"])
        y, length = _perturb(x, 5000, {"shift": 0.3}, seed)
        assert np.flatnonzero(y)[[0, -1]].tolist() == [3000 + shift, 4999 + shift] and length == 5000 + shift
        np.testing.assert_array_equal(y[3000 + shift:5000 + shift], 0.5)


def test_silence_inserts_a_silent_stretch_and_moves_the_rest_later():
    x = np.zeros(N, np.float32)
    x[:5000] = 0.5
    drawn = _draw({"silence": 0.3})
    width, start = int(drawn["silence_width"]), int(np.floor(drawn["silence_start"] * 5001))
    y, length = _perturb(x, 5000, {"silence": 0.3})
    assert width > 0 and length == 5000 + width
    expected = np.zeros(N, np.float32)
    expected[:5000 + width] = 0.5
    expected[start:start + width] = 0.0
    np.testing.assert_array_equal(y, expected)


def test_gain_changes_the_rms_by_the_drawn_db():
    gain = _draw({"gain_db": 6.0})["gain_db"]
    y, length = _perturb(_tone(), 6000, {"gain_db": 6.0})
    assert gain != 0.0 and length == 6000
    measured = 20 * np.log10(np.sqrt(np.mean(y[:6000] ** 2)) / np.sqrt(np.mean(_tone()[:6000] ** 2)))
    assert measured == pytest.approx(gain, abs=1e-3)


@pytest.mark.parametrize("snr_db", [10.0, 0.0])
def test_noise_is_at_the_set_snr_of_the_clips_own_power_on_half_of_the_examples(snr_db):
    x, noisy = _tone(), 0
    for i in range(16):
        seed = tf.constant([1, i], tf.int64)
        y, length = _perturb(x, 6000, {"noise_snr_db": snr_db}, seed)
        noise = y - x
        assert length == 6000 and not noise[6000:].any()  # the padding is not part of the recording
        if not bool(draw_parameters(seed, {"noise_snr_db": snr_db}, N)["noisy"]):
            np.testing.assert_array_equal(y, x)  # the rest stay clean, as at test time
            continue
        noisy += 1
        measured = 10 * np.log10(np.mean(x[:6000] ** 2) / np.mean(noise[:6000] ** 2))
        assert measured == pytest.approx(snr_db, abs=1.0)
    assert 4 <= noisy <= 12


def test_vtlp_moves_the_formants_by_the_factor_and_keeps_nyquist():
    bins = 129  # a 256-point FFT
    spectrum = np.full((3, 2, 5, bins), 0.1, np.float32)  # [B, windows, frames, bins]: any leading shape
    spectrum[..., 40] = 1.0
    spectrum[..., -1] = 0.5
    warped = warp_frequencies(tf.constant(spectrum), tf.constant([1.1, 0.9, 1.0])).numpy()
    assert warped.shape == spectrum.shape
    assert [int(np.argmax(warped[i, 0, 0])) for i in range(3)] == [44, 36, 40]  # 40 * 1.1, 40 * 0.9
    np.testing.assert_allclose(warped[2], spectrum[2])  # factor 1: unchanged
    np.testing.assert_allclose(warped[..., -1], 0.5)  # Nyquist onto Nyquist, whatever the factor
    np.testing.assert_allclose(warped[..., 0], 0.1)


def test_vtlp_factors_come_from_each_examples_seed():
    seeds = tf.constant([[0, 5], [1, 5], [2, 5], [0, 5]], tf.int64)
    factors = vtlp_factors(seeds, 0.1).numpy()
    assert ((factors >= 0.9) & (factors <= 1.1)).all() and factors[0] == factors[3] != factors[1]
    np.testing.assert_array_equal(vtlp_factors(seeds[1:3], 0.1).numpy(), factors[1:3])  # whatever the batch


def test_all_zero_clip_stays_silent_and_finite_with_every_option():
    for length in (0, 3000, N):
        y, n = _perturb(np.zeros(N, np.float32), length, ALL)
        assert y.shape == (N,) and np.isfinite(y).all() and not y.any() and 0 <= n <= N


def test_same_seed_same_output_whatever_the_batch_and_another_seed_differs():
    x = np.stack([_tone(6000), _tone(8000, 300.0), _tone(2000, 600.0)])
    seeds = tf.constant([[0, 1], [0, 2], [0, 3]], tf.int64)
    batch, lengths = perturb_batch(tf.constant(x), tf.constant([6000, 8000, 2000]), seeds, ALL, RATE)
    again, _ = perturb_batch(tf.constant(x), tf.constant([6000, 8000, 2000]), seeds, ALL, RATE)
    np.testing.assert_array_equal(batch.numpy(), again.numpy())
    alone, n = _perturb(x[1], 8000, ALL, seeds[1])
    np.testing.assert_allclose(batch.numpy()[1], alone, atol=1e-6)
    assert int(lengths[1]) == n and lengths.dtype == tf.int64
    other, _ = _perturb(x[1], 8000, ALL, tf.constant([0, 9], tf.int64))
    assert not np.allclose(other, alone)


@pytest.mark.parametrize("options, named", [
    ({"speed": 0.7}, "waveform_augment speed must be in [0, 0.5)"),
    ({"vtlp": 0.5}, "waveform_augment vtlp must be in [0, 0.5)"),
    ({"noise_snr_db": float("nan")}, "waveform_augment noise_snr_db"),
    ({"gain_db": -1}, "waveform_augment gain_db must be >= 0"),
    ({"shift": True}, "waveform_augment shift"),
    ({"tempo": 0.1}, "Unknown audio waveform_augment option(s) ['tempo']"),
    ([0.1], "audio waveform_augment must be a dict"),
])
def test_a_bad_option_is_named(options, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Preprocessor({"audio": {"waveform_augment": options}})


# ---- training only -------------------------------------------------------------------------------


def _wavs(count=6, seed=0):
    rng = np.random.default_rng(seed)
    return [encode_wav(0.2 * rng.standard_normal(int(RATE * rng.uniform(0.4, 1.2))), RATE) for _ in range(count)]


def _model(waveform_augment=None, cmvn=True):
    pre = {**TINY_AUDIO["preprocessing"], "cmvn": cmvn, "waveform_augment": waveform_augment}
    preset = {"name": "tiny_audio", "modalities": {"audio": {**TINY_AUDIO, "preprocessing": pre}}}
    return mmkeras.build_model(preset, num_classes=3, seed=0)


def test_serving_evaluation_and_predict_features_are_bit_identical_with_the_option():
    plain, augmented = _model(), _model(ALL)
    augmented.set_weights(plain.get_weights())
    raw = {"audio": _wavs()}
    tensors = {"audio": tf.constant(raw["audio"])}
    for fn in (lambda p: p.preprocess_batch(tensors), lambda p: p.batch_function()(tensors)):
        a, b = fn(plain.preprocessor), fn(augmented.preprocessor)
        np.testing.assert_array_equal(a["audio"].numpy(), b["audio"].numpy())
    np.testing.assert_array_equal(plain.preprocess(raw)["audio"], augmented.preprocess(raw)["audio"])
    np.testing.assert_array_equal(plain.predict(raw, verbose=0), augmented.predict(raw, verbose=0))
    y = np.arange(6) % 3
    assert plain.evaluate(raw, y, verbose=0) == augmented.evaluate(raw, y, verbose=0)
    # The saved config keeps the option; the rebuilt model's features are the same again.
    clone = mmkeras.MultimodalModel.from_config(json.loads(json.dumps(augmented.get_config())))
    assert clone.preprocessor.config["audio"]["waveform_augment"]["speed"] == 0.2
    np.testing.assert_array_equal(clone.preprocess(raw)["audio"], plain.preprocess(raw)["audio"])


@pytest.mark.parametrize("options", [{"shift": 0.3, "noise_snr_db": 5.0}, {"vtlp": 0.2}])
def test_raw_fit_perturbs_the_training_features_freshly_every_epoch_and_replays_on_resume(options):
    model = _model(options)
    raw, y = {"audio": _wavs()}, np.arange(6) % 3
    prepared = RawInputs(model).prepare_fit(raw, y, batch_size=6, shuffle=False, validation_data=(raw, y))
    clean = model.preprocess(raw)["audio"]
    set_epoch(0)
    first, second = (next(iter(prepared.x))[0]["audio"].numpy() for _ in range(2))
    assert first.shape == clean.shape and np.isfinite(first).all()
    assert not np.allclose(first, clean) and not np.allclose(first, second)
    set_epoch(0)  # a resumed run replays epoch 0's draws
    np.testing.assert_array_equal(next(iter(prepared.x))[0]["audio"].numpy(), first)
    validation = next(iter(prepared.validation_data))[0]["audio"].numpy()  # validation is never augmented
    np.testing.assert_array_equal(validation, clean)
    history = model.fit(raw, y, epochs=2, batch_size=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_fit_on_features_warns_that_the_waveform_option_cannot_apply():
    model = _model({"gain_db": 3.0})
    features = model.preprocess({"audio": _wavs()})
    with pytest.warns(RawAugmentationWarning, match="waveform_augment"):
        model.fit(features, np.arange(6) % 3, epochs=1, verbose=0)


def test_epoch_example_seeds_number_every_example_and_epoch_and_shuffle_as_epoch_shuffle():
    values = tf.data.Dataset.range(5)
    seeded = epoch_example_seeds(values.map(lambda v: v * 10), 5, seed=3, shuffle=True)
    order = epoch_shuffle(values, 5, seed=3)
    set_epoch(0)
    passes = [[(int(v), tuple(s.numpy())) for v, s in seeded] for _ in range(2)]
    set_epoch(0)
    orders = [[int(v) for v in order] for _ in range(2)]
    for epoch, (got, want) in enumerate(zip(passes, orders)):
        assert [v for v, _ in got] == [10 * i for i in want]
        assert [s for _, s in got] == [(3, epoch * 5 + i) for i in want]


@pytest.mark.slow
def test_export_serves_the_features_of_a_model_without_the_option(tmp_path):
    plain, augmented = _model(), _model(ALL)
    augmented.set_weights(plain.get_weights())
    raw = _wavs(3, seed=1)
    path = mmkeras.export_saved_model(augmented, str(tmp_path / "m"), warmup=False)
    served = tf.saved_model.load(path).signatures["serving_default"]
    np.testing.assert_allclose(served(audio=tf.constant(raw))["scores"].numpy(),
                               plain.predict({"audio": raw}, verbose=0), atol=1e-6)


def test_a_training_manifest_is_augmented_every_epoch_and_an_evaluation_one_is_not(tmp_path):
    model = _model({"noise_snr_db": 5.0})
    lines = ["audio,label"]
    for i, wav in enumerate(_wavs()):
        (tmp_path / f"{i}.wav").write_bytes(wav)
        lines.append(f"{i}.wav,{i % 3}")
    manifest = tmp_path / "train.csv"
    manifest.write_text("\n".join(lines) + "\n")
    clean = next(iter(mmkeras.data.from_manifest(str(manifest), model=model, batch_size=6)))[0]["audio"].numpy()
    train = mmkeras.data.from_manifest(str(manifest), model=model, batch_size=6, seed=0, augment=True)
    set_epoch(0)
    first, second = (next(iter(train))[0]["audio"].numpy() for _ in range(2))
    assert not np.allclose(first, clean) and not np.allclose(first, second)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RawAugmentationWarning)
        model.fit(str(manifest), epochs=1, verbose=0)


def test_a_cached_raw_fit_preprocesses_only_the_augmented_modality_per_epoch_with_the_same_batches(monkeypatch):
    x, y = av_subset(10)
    x["image"][3], x["audio"][5] = b"", b""  # missing inputs: their present flags come through both paths
    preset = tiny_av_preset()
    audio = preset["modalities"]["audio"]
    preset["modalities"]["audio"] = {**audio, "preprocessing": {**audio["preprocessing"],
                                                                 "waveform_augment": {"silence": 0.2, "gain_db": 6.0}}}
    model = mmkeras.build_model(preset, num_classes=10, seed=0)
    inputs = RawInputs(model)
    parts = []
    monkeypatch.setattr(model.preprocessor, "part_function",
                        lambda modalities, training=False: parts.append((list(modalities), training))
                        or Preprocessor.part_function(model.preprocessor, modalities, training))
    epochs = {}
    for cache in (True, False):
        ds = inputs.prepare(x, y, 4, shuffle=True, training=True, cache=cache)[0]
        assert int(ds.cardinality()) == 3  # known: Keras shows the steps and does not warn at the end
        set_epoch(0)
        epochs[cache] = [[(features, labels.numpy()) for features, labels in ds] for _ in range(2)]
    assert parts == [(["image"], False), (["audio"], True)]  # the images once, the audio every epoch
    for cached, uncached in zip(epochs[True], epochs[False]):
        assert len(cached) == len(uncached) == 3
        for (features, labels), (want, want_labels) in zip(cached, uncached):
            np.testing.assert_array_equal(labels, want_labels)
            assert sorted(features) == sorted(want) == ["audio", "image", "present"]
            for key in want:
                np.testing.assert_array_equal(features[key].numpy(), want[key].numpy(), err_msg=key)
    first, second = ([f["audio"].numpy() for f, _ in epoch] for epoch in epochs[True])
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))  # a fresh draw each epoch
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
