"""speech_embedding: mmkeras's TensorFlow front end and Keras tower vs openWakeWord's ONNX models.

The reference is the ONNX Runtime run of the two models openWakeWord 0.4.0 ships
(``melspectrogram.onnx``, then ``embedding_model.onnx`` on 76-frame windows every 8
frames, openWakeWord's own ``x / 10 + 2`` in between); mmkeras never imports ONNX
Runtime, only this check does. mmkeras's side starts from 16 kHz WAV bytes:
``frontend="speech_embedding"`` preprocessing, then ``audio/speech_embedding`` with
the converted weights. The ONNX front end centres its 400-sample window in 512, so
it sees each clip delayed by 56 samples (mmkeras's frames are the same frames).

Clips: two FSDD recordings (8 kHz, resampled to 16 kHz by mmkeras's resampler and
rounded to int16) and a synthetic chirp in noise, 1 s each. Reported: max absolute
difference of the log-mels and of the embeddings. ``--fixture`` also writes the CI
regression fixture (the int16 clips and the ONNX outputs).

Setup of the reference (ONNX Runtime for this check only)::

    pip install --target /tmp/ort onnxruntime==1.32.0 --no-deps
    python -m mmkeras.weights install speech_embedding

Usage: PYTHONPATH=.:/tmp/ort python benchmarks/speech_embedding_parity.py [--fixture]
"""

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "speech_embedding_reference.npz"
FSDD = Path("/work/shared/data/fsdd/recordings")
CLIPS = ("3_george_0.wav", "7_jackson_0.wav")
RATE, SAMPLES, ONNX_DELAY = 16000, 16000, 56


def synthetic_clip(seed=0):
    """A 1 s 200 -> 3000 Hz chirp in white noise, int16."""
    t = np.arange(SAMPLES) / RATE
    noise = np.random.default_rng(seed).standard_normal(SAMPLES)
    x = 0.4 * np.sin(2 * np.pi * (200 * t + 1400 * t ** 2)) + 0.05 * noise
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def fsdd_clip(name):
    """An FSDD clip resampled to 16 kHz by mmkeras, zero-padded / cut to 1 s, int16."""
    import tensorflow as tf

    from mmkeras.preprocessing.audio import decode_wav, resample

    samples, rate = decode_wav(tf.constant((FSDD / name).read_bytes()))
    x = resample(samples, rate, RATE).numpy()[:SAMPLES]
    return np.round(np.clip(np.pad(x, (0, SAMPLES - len(x))), -1, 1) * 32767).astype(np.int16)


def onnx_reference(clips, folder):
    """``(log-mels [N, 98, 32], embeddings [N, 3, 96])`` from openWakeWord's ONNX models."""
    import onnxruntime as ort

    mel_model = ort.InferenceSession(str(folder / "melspectrogram.onnx"), providers=["CPUExecutionProvider"])
    emb_model = ort.InferenceSession(str(folder / "embedding_model.onnx"), providers=["CPUExecutionProvider"])
    mels, embeddings = [], []
    for clip in clips:
        audio = np.concatenate([np.zeros(ONNX_DELAY, np.float32), clip.astype(np.float32)])[None]
        mel = np.squeeze(mel_model.run(None, {"input": audio})[0]) / 10 + 2  # openWakeWord's transform
        windows = np.stack([mel[s:s + 76] for s in range(0, len(mel) - 75, 8)])[..., None].astype(np.float32)
        embeddings.append(emb_model.run(None, {"input_1": windows})[0].reshape(len(windows), 96))
        mels.append(mel)
    return np.stack(mels), np.stack(embeddings)


def mmkeras_outputs(clips):
    """``(log-mels, embeddings)`` from 16 kHz WAV bytes through mmkeras's front end and tower."""
    import tensorflow as tf

    from mmkeras.codecs import encode_wav
    from mmkeras.modalities.features import SPEECH_EMBEDDING_FRONTEND
    from mmkeras.preprocessing.audio import audio_features_batch
    from mmkeras.towers import AudioSpeechEmbedding

    wavs = tf.constant([encode_wav(c.astype(np.float32) / 32768.0, RATE) for c in clips])
    mel, _ = audio_features_batch(wavs, duration_s=SAMPLES / RATE, frontend="speech_embedding",
                                  **SPEECH_EMBEDDING_FRONTEND)
    tower = AudioSpeechEmbedding(weights="speech_embedding")
    return mel.numpy(), np.asarray(tower(mel.numpy())["sequence"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixture", action="store_true", help=f"also write {FIXTURE.relative_to(REPO)}")
    args = parser.parse_args()
    from mmkeras.weights import resolve_weights

    clips = np.stack([fsdd_clip(name) for name in CLIPS] + [synthetic_clip()])
    ref_mel, ref_emb = onnx_reference(clips, resolve_weights("speech_embedding"))
    mel, emb = mmkeras_outputs(clips)
    report = {"clips": list(CLIPS) + ["synthetic chirp"], "mel_frames": int(mel.shape[1]),
              "mel_max_abs_diff": float(np.abs(mel - ref_mel).max()),
              "embedding_max_abs_diff": float(np.abs(emb - ref_emb).max()),
              "embedding_max_abs": float(np.abs(ref_emb).max())}
    print(json.dumps(report, indent=1))
    if args.fixture:
        np.savez_compressed(FIXTURE, clips=clips, mel=ref_mel.astype(np.float32), embedding=ref_emb.astype(np.float32))
        print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()
