"""The audio modality: WAV bytes -> log-mel (or MFCC) frames ``[T, F]``.

Shapes are pure arithmetic on the config (no TensorFlow), so models can be built
where TensorFlow is not installed; decoding, resampling and the STFT are graph
code in :mod:`mmkeras.preprocessing.audio`.
"""


import numpy as np

from mmkeras.codecs import encode_wav
from mmkeras.layers import AudioPerturbation, SpecAugment, audio_augmentation
from mmkeras.modalities.base import MODALITIES, Modality
from mmkeras.modalities.features import (
    audio_feature_shape,
    check_frontend,
    check_waveform_augment,
    frame_params,
    perturbs_samples,
)
from mmkeras.modalities.limits import AUDIO_LIMIT_DOCS, AUDIO_LIMITS
from mmkeras.registry import constructor_options

AUDIO_DEFAULTS = {
    "sample_rate": 16000, "duration_s": 1.0, "frame_length_ms": 25.0, "frame_step_ms": 10.0,
    "n_mels": 64, "fmin": 20.0, "fmax": None, "n_mfcc": None,
    # Long-clip mode: up to max_windows windows of duration_s, features [N, T, F]
    # plus an "audio_windows" [N] validity mask (None: trim to duration_s).
    "max_windows": None,
    # None: log-mel as above; "speech_embedding": the front end of that pretrained tower (features.AUDIO_FRONTENDS).
    "frontend": None,
    # Per-utterance cepstral mean/variance normalisation of the features (speaker/channel robustness).
    "cmvn": False,
    # Training-only waveform perturbations ({speed, pitch, shift, silence, gain_db, noise_snr_db}; None: off),
    # between decoding and the features, and vtlp (a frequency warp of the spectrum before the mel filterbank);
    # serving, evaluation and predict never apply them.
    "waveform_augment": None,
}


@MODALITIES.register("audio")
class AudioModality(Modality):
    """WAV audio (any rate, mono or multi-channel, 8/16/24/32-bit PCM or float) as log-mel frames."""

    description = "WAV file bytes, b'' when absent"
    serving_expects = "RIFF/WAVE file bytes (PCM 8/16/24/32-bit or float 32/64-bit, any rate, mono or multi-channel)"
    reads_files = True
    order = 1
    defaults = AUDIO_DEFAULTS
    augment_options = frozenset(constructor_options(SpecAugment)) | frozenset(constructor_options(AudioPerturbation))
    limits, limit_docs = AUDIO_LIMITS, AUDIO_LIMIT_DOCS
    file_signatures = ((((0, b"RIFF"), (8, b"WAVE")), "WAV"),)
    file_expected = "a RIFF/WAVE file (expected bytes starting with RIFF....WAVE)"
    file_noun = "a WAV file"

    def check(self, config):
        frame_params(config["sample_rate"], config["duration_s"], config["frame_length_ms"],
                     config["frame_step_ms"])  # raises on frames that do not fit
        if config["n_mfcc"] is not None and not 0 < config["n_mfcc"] <= config["n_mels"]:
            raise ValueError(f"audio n_mfcc must be in 1..n_mels={config['n_mels']}, got {config['n_mfcc']}")
        check_frontend(config)
        if config["max_windows"] is not None and int(config["max_windows"]) < 1:
            raise ValueError(f"audio max_windows must be a positive integer or None, got {config['max_windows']}")
        check_waveform_augment(config["waveform_augment"])
        return config

    def feature_specs(self, config):
        specs = {self.name: (audio_feature_shape(**config), "float32")}
        if config["max_windows"]:
            specs[self.windows_feature(config)] = ((int(config["max_windows"]),), "float32")
        return specs

    def windows_feature(self, config):
        return f"{self.name}_windows" if config["max_windows"] else None

    def feature_rules(self, config, tower):
        windows = self.windows_feature(config)
        return {windows: "flag"} if windows else {}

    def augmentation(self, options, config, name):
        return audio_augmentation(options, name=name, mfcc=bool(config["n_mfcc"])) if options else None

    def augments_raw(self, config):
        return check_waveform_augment(config["waveform_augment"]) is not None

    def preprocess_batch(self, values, config, state, guard=True, seeds=None):
        from mmkeras.preprocessing import audio as audio_ops

        perturb = warp = None
        options = check_waveform_augment(config["waveform_augment"])
        if seeds is not None and options is not None:  # training: a per-example seed each epoch
            from mmkeras.preprocessing import waveform_augment

            if perturbs_samples(options):
                def perturb(samples, length):
                    return waveform_augment.perturb_batch(samples, length, seeds, options, config["sample_rate"])
            if options["vtlp"]:
                def warp(spectrum):
                    factors = waveform_augment.vtlp_factors(seeds, options["vtlp"])
                    return waveform_augment.warp_frequencies(spectrum, factors)

        if config["max_windows"]:
            feat, present, valid = audio_ops.audio_window_features_batch(values, **config, name=self.name,
                                                                          perturb=perturb, warp=warp)
            return {self.name: feat, self.windows_feature(config): valid}, present
        cfg = {k: v for k, v in config.items() if k != "max_windows"}
        feat, present = audio_ops.audio_features_batch(values, **cfg, name=self.name, perturb=perturb, warp=warp)
        return {self.name: feat}, present

    # ---- evaluation ---------------------------------------------------------------------------

    corruption = "white_noise_snr_db"
    corruption_severities = (20.0, 10.0, 0.0)

    def corrupt_value(self, value, severity, rng):
        """Adds white noise at ``severity`` dB SNR relative to the clip's RMS; writes float32 WAV.

        Float WAV keeps sums beyond [-1, 1] exactly (16-bit PCM would clip them).
        """
        samples, rate = read_wav(value)
        rms = np.sqrt(np.mean(samples ** 2)) or 1e-4
        noisy = samples + rng.normal(0.0, rms / 10.0 ** (severity / 20.0), samples.shape)
        return encode_wav(noisy, rate, bits=32, encoding="float")

    def explanation_panels(self, feature, attribution, names=None):
        """The frames (windows of a long clip one after another) and their integrated gradients, time across."""
        frames = np.asarray(feature).reshape(-1, np.shape(feature)[-1])
        return [{"kind": "matrix", "name": self.name, "title": f"{self.name} log-mel (frames x bands)",
                 "values": frames.T},
                {"kind": "signed_map", "name": f"{self.name}: integrated gradients",
                 "title": f"{self.name}: integrated gradients",
                 "values": np.asarray(attribution).reshape(frames.shape).T}]

    def example(self, config):
        rate = int(config["sample_rate"])
        t = np.arange(int(rate * 0.25)) / rate
        return encode_wav(0.3 * np.sin(2 * np.pi * 440.0 * t), rate)


def read_wav(data):
    """WAV bytes -> ``(float64 mono samples [N], sample_rate)`` through the model's own graph decoder.

    One WAV reader for the library: corruptions see exactly the samples the model
    sees (channels averaged, every supported encoding, the same named errors).

    Example:
    ```python
    samples, rate = read_wav(encode_wav(np.zeros(800), 8000))  # (array of 800 zeros, 8000)
    ```
    """
    import tensorflow as tf

    from mmkeras.preprocessing.audio import decode_wav

    samples, rate = decode_wav(tf.constant(data))
    return samples.numpy().astype(np.float64), int(rate)
