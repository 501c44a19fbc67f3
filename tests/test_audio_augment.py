"""Speaker-robust audio: per-utterance CMVN (preprocessing, exported) and training-only perturbations."""

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.codecs import encode_wav
from mmkeras.layers import AudioAugmentation, AudioPerturbation, SpecAugment
from mmkeras.layers.audio_augment import PERTURBATION_OPTIONS, audio_augmentation
from mmkeras.preprocessing.audio import audio_features_batch, audio_window_features_batch
from tests._av_helpers import TINY_AUDIO

RATE = 8000
AUDIO = {"sample_rate": RATE, "duration_s": 1.0, "frame_length_ms": 32.0, "frame_step_ms": 16.0, "n_mels": 40}
RNG = np.random.default_rng(0)


def _speech_like(samples, seed):
    rng = np.random.default_rng(seed)
    return 0.3 * rng.standard_normal(samples) * np.hanning(samples)


WAVS = [encode_wav(_speech_like(4000, 1), RATE), encode_wav(3.0 * _speech_like(8000, 2) / 3, RATE), b""]


# ---- CMVN ---------------------------------------------------------------------------------------

def test_cmvn_gives_zero_mean_unit_variance_over_the_clips_frames():
    x, present = audio_features_batch(tf.constant(WAVS), **AUDIO, cmvn=True)
    x = x.numpy()
    # 4,000 samples fill (4000 - 256) // 128 + 1 = 30 frames; the rest is zero padding, left out of the stats.
    for row, frames in ((0, 30), (1, 61)):
        np.testing.assert_allclose(x[row, :frames].mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(x[row, :frames].std(axis=0), 1.0, atol=1e-3)
    assert present.numpy().tolist() == [1.0, 1.0, 0.0] and not x[2].any()  # absent stays all zeros


def test_cmvn_cancels_gain_and_channel_offsets():
    """A louder copy of the same clip has the same normalised features (the log-mel is shifted by a constant)."""
    quiet = 0.05 * np.random.default_rng(3).standard_normal(8000)  # no near-silent frames: log(mel + 1e-6) ~ log
    wavs = tf.constant([encode_wav(quiet, RATE), encode_wav(4.0 * quiet, RATE)])
    x, _ = audio_features_batch(wavs, **AUDIO, cmvn=True)
    raw, _ = audio_features_batch(wavs, **AUDIO)
    assert np.abs(raw[0] - raw[1]).mean() > 1.0  # without CMVN they differ by log(4)
    np.testing.assert_allclose(x[0], x[1], atol=1e-2)


def test_cmvn_windows_normalise_each_window_over_its_samples():
    wav = encode_wav(_speech_like(12000, 4), RATE)  # 1.5 s: a full window and half of one
    x, _, valid = audio_window_features_batch(tf.constant([wav]), max_windows=2, **AUDIO, cmvn=True)
    assert valid.numpy().tolist() == [[1.0, 1.0]]
    np.testing.assert_allclose(x[0, 0].numpy().mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(x[0, 1, :30].numpy().std(axis=0), 1.0, atol=1e-3)


def test_cmvn_must_be_a_bool():
    with pytest.raises(ValueError, match="audio cmvn must be true or false, got 'yes'"):
        audio_features_batch(tf.constant(WAVS[:1]), **AUDIO, cmvn="yes")


def _cmvn_model(**extra):
    return mmkeras.build_model({"name": "tiny_cmvn", "modalities": {"audio": {
        **TINY_AUDIO, "preprocessing": {**TINY_AUDIO["preprocessing"], "cmvn": True}}},
        "fusion": {"type": "fusion/late", "dim": 8}, **extra}, num_classes=3, seed=0)


def test_cmvn_is_in_the_preprocessor_config_and_the_training_features():
    model = _cmvn_model()
    assert model.preprocessor.get_config()["modalities"]["audio"]["cmvn"] is True
    features = model.preprocess({"audio": np.array(WAVS[:2], dtype=object)})
    expected, _ = audio_features_batch(tf.constant(WAVS[:2]), **AUDIO, cmvn=True)
    np.testing.assert_allclose(features["audio"], expected.numpy(), atol=1e-5)


@pytest.mark.slow
def test_cmvn_is_identical_through_the_exported_saved_model(tmp_path):
    model = _cmvn_model()
    raw = np.array(WAVS[:2], dtype=object)  # an example with every input empty is refused when served
    expected = model.predict({"audio": raw}, verbose=0)  # the training-side preprocess (tf.data)
    path = mmkeras.export_saved_model(model, str(tmp_path / "m"), warmup=False)
    served = tf.saved_model.load(path).signatures["serving_default"]
    out = served(audio=tf.constant(list(raw)))
    np.testing.assert_allclose(out["scores"].numpy(), expected, atol=1e-5)
    assert set(out) == {"scores", "classes", "present"}  # the served outputs of every classifier


# ---- perturbations ------------------------------------------------------------------------------

FEATURES = RNG.standard_normal((4, 30, 16)).astype("float32") - 3.0
ONE_BY_ONE = [{"speed": 0.2}, {"pitch": 0.2}, {"shift": 0.3}, {"silence": 0.3}, {"gain_db": 6.0},
              {"noise_snr_db": 0.0}]


@pytest.mark.parametrize("options", ONE_BY_ONE, ids=lambda o: next(iter(o)))
def test_each_perturbation_is_identity_at_inference_and_changes_training_inputs(options):
    layer = AudioPerturbation(**options, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(FEATURES)), FEATURES)
    np.testing.assert_array_equal(np.asarray(layer(FEATURES, training=False)), FEATURES)
    out = np.asarray(layer(FEATURES, training=True))
    assert out.shape == FEATURES.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out - FEATURES).max() > 1e-3


@pytest.mark.parametrize("options", ONE_BY_ONE, ids=lambda o: next(iter(o)))
def test_each_perturbation_is_deterministic_under_a_seed(options):
    first = np.asarray(AudioPerturbation(**options, seed=7)(FEATURES, training=True))
    again = np.asarray(AudioPerturbation(**options, seed=7)(FEATURES, training=True))
    other = np.asarray(AudioPerturbation(**options, seed=8)(FEATURES, training=True))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_time_shift_moves_frames_and_fills_with_the_clips_floor():
    x = np.tile(np.arange(20, dtype="float32")[None, :, None], (2, 1, 3))  # frame t holds t
    out = np.asarray(AudioPerturbation(shift=0.45, seed=0)(x, training=True))
    for row in out[:, :, 0]:
        np.testing.assert_array_equal(row, np.round(row))  # whole frames moved, no interpolation
        kept = np.flatnonzero(row)  # the gap holds the clip's floor, frame 0's value (0)
        assert np.all(np.diff(row[kept]) == 1) and np.all(np.diff(kept) == 1)
    assert not np.array_equal(out, x)


def test_speed_and_pitch_keep_the_shape_of_odd_sizes():
    x = RNG.standard_normal((3, 17, 9)).astype("float32")
    assert np.asarray(AudioPerturbation(speed=0.3, pitch=0.3, seed=0)(x, training=True)).shape == (3, 17, 9)


def test_gain_adds_a_constant_log_magnitude():
    out = np.asarray(AudioPerturbation(gain_db=10.0, seed=1)(FEATURES, training=True))
    offsets = (out - FEATURES).reshape(4, -1)
    np.testing.assert_allclose(offsets, offsets[:, :1] * np.ones_like(offsets), atol=1e-5)
    assert np.all(np.abs(offsets[:, 0]) <= 10.0 * np.log(10.0) / 20.0 + 1e-6)


@pytest.mark.parametrize("bad, match", [({"speed": 0.6}, r"speed must be in \[0, 0.5\)"),
                                        ({"gain_db": -1.0}, "gain_db must be >= 0")])
def test_bad_options_name_the_option(bad, match):
    with pytest.raises(ValueError, match=match):
        AudioPerturbation(**bad)


def test_augment_section_builds_spec_augment_alone_or_the_combined_layer():
    assert isinstance(audio_augmentation({"time_masks": 2}), SpecAugment)
    combined = audio_augmentation({"time_masks": 1, "speed": 0.1, "seed": 2}, name="audio_augment")
    assert isinstance(combined, AudioAugmentation)
    assert combined.perturbation == {"speed": 0.1} and combined.spec_augment == {"time_masks": 1}
    assert mmkeras.modalities.modality("audio").augment_options >= PERTURBATION_OPTIONS
    clone = AudioAugmentation.from_config(combined.get_config())
    np.testing.assert_array_equal(np.asarray(clone(FEATURES, training=True)),
                                  np.asarray(combined(FEATURES, training=True)))


def test_preset_augment_options_reach_the_model_and_are_training_only():
    model = _cmvn_model()
    assert not any(isinstance(layer, AudioAugmentation) for layer in model.layers)
    augmented = mmkeras.build_model(
        {"name": "tiny_aug", "modalities": {"audio": {**TINY_AUDIO, "augment": {"speed": 0.2, "pitch": 0.2}}},
         "fusion": {"type": "fusion/concat", "dim": 8}}, num_classes=3, seed=0)
    layer = augmented.get_layer("audio_augment")
    assert isinstance(layer, AudioAugmentation)
    x = {"audio": RNG.standard_normal((2, 61, 40)).astype("float32"), "present": np.ones((2, 1), "float32")}
    np.testing.assert_array_equal(np.asarray(augmented(x)), np.asarray(augmented(x)))  # inference: no noise


def test_log_mel_only_perturbations_are_refused_on_mfccs():
    with pytest.raises(ValueError, match=r"audio augment options \['gain_db', 'pitch'\] act on log-mel features; "
                                         "this audio config sets n_mfcc"):
        mmkeras.build_model({"name": "tiny_mfcc", "modalities": {"audio": {
            **TINY_AUDIO, "preprocessing": {**TINY_AUDIO["preprocessing"], "n_mfcc": 13},
            "augment": {"pitch": 0.1, "gain_db": 3.0, "speed": 0.1}}}, "fusion": {"type": "fusion/concat", "dim": 8}},
            num_classes=3)
    assert audio_augmentation({"speed": 0.1, "shift": 0.1}, mfcc=True).perturbation == {"speed": 0.1, "shift": 0.1}
