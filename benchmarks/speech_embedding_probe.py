"""Does the pretrained speech_embedding tower help spoken digits from an unseen speaker? A linear probe.

FSDD (3,000 clips, 6 speakers x 10 digits x 50), leave-one-speaker-out: for each
speaker, a ridge-regression classifier (one-hot targets, closed form, the ridge
picked on the training speakers by an inner leave-one-speaker-out) is fitted on the
other five speakers' features and scored on the held-out speaker's clips. Features,
each standardised on the training speakers:

- ``pretrained``: the frozen ``audio/speech_embedding`` tower with the converted
  weights, its ``pooled`` 96-d output (mean of the 3 tokens of a 1 s clip);
- ``pretrained_tokens``: the same tower's 3 tokens concatenated (288-d: keeps when the word is);
- ``random``: the same architecture, randomly initialised (seed 0), frozen;
- ``logmel_stats``: mean and standard deviation over time of the same 32 log-mels (64-d).

Only a linear layer is trained, so the figures compare representations, not training
recipes. Usage: ``PYTHONPATH=. python benchmarks/speech_embedding_probe.py [--out FILE]``
(about 2 minutes on 2 CPU cores).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

FSDD = Path("/work/shared/data/fsdd/recordings")
RIDGES = (0.1, 1.0, 10.0, 100.0, 1000.0)


def load_fsdd():
    files = sorted(FSDD.glob("*.wav"))
    digits = np.array([int(f.name.split("_")[0]) for f in files])
    speakers = np.array([f.name.split("_")[1] for f in files])
    return [f.read_bytes() for f in files], digits, speakers


def features(wavs, batch=250):
    """``{name: [N, D]}`` for the three feature sets."""
    import keras
    import tensorflow as tf

    from mmkeras.modalities.features import SPEECH_EMBEDDING_FRONTEND
    from mmkeras.preprocessing.audio import audio_features_batch
    from mmkeras.towers import AudioSpeechEmbedding

    mels = np.concatenate([
        audio_features_batch(tf.constant(wavs[i:i + batch]), duration_s=1.0, frontend="speech_embedding",
                             **SPEECH_EMBEDDING_FRONTEND)[0].numpy() for i in range(0, len(wavs), batch)])
    keras.utils.set_random_seed(0)
    towers = {"pretrained": AudioSpeechEmbedding(weights="speech_embedding"), "random": AudioSpeechEmbedding()}
    outputs = {name: [tower(mels[i:i + batch]) for i in range(0, len(mels), batch)] for name, tower in towers.items()}
    out = {name: np.concatenate([np.asarray(o["pooled"]) for o in outs]) for name, outs in outputs.items()}
    tokens = np.concatenate([np.asarray(o["sequence"]) for o in outputs["pretrained"]])
    out["pretrained_tokens"] = tokens.reshape(len(tokens), -1)
    out["logmel_stats"] = np.concatenate([mels.mean(1), mels.std(1)], axis=1)
    return out


def ridge_fit(x, y, ridge, classes=10):
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    target = np.eye(classes)[y]
    return np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ target)


def ridge_predict(w, x):
    return (np.concatenate([x, np.ones((len(x), 1))], axis=1) @ w).argmax(1)


def standardise(train, test):
    mean, std = train.mean(0), train.std(0) + 1e-6
    return (train - mean) / std, (test - mean) / std


def loso_accuracy(x, y, speakers, ridge):
    """Per held-out speaker accuracy of the ridge probe."""
    scores = {}
    for s in sorted(set(speakers)):
        train, test = speakers != s, speakers == s
        a, b = standardise(x[train], x[test])
        scores[s] = float((ridge_predict(ridge_fit(a, y[train], ridge), b) == y[test]).mean())
    return scores


def choose_ridge(x, y, speakers):
    """The ridge with the best inner leave-one-speaker-out accuracy on the training speakers only."""
    return max(RIDGES, key=lambda r: np.mean(list(loso_accuracy(x, y, speakers, r).values())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    start = time.time()
    wavs, digits, speakers = load_fsdd()
    feats = features(wavs)
    results = {}
    for name, x in feats.items():
        per_speaker = {}
        for s in sorted(set(speakers)):
            inner = speakers != s
            ridge = choose_ridge(x[inner], digits[inner], speakers[inner])
            a, b = standardise(x[inner], x[~inner])
            per_speaker[s] = float((ridge_predict(ridge_fit(a, digits[inner], ridge), b) == digits[~inner]).mean())
        results[name] = {"mean": float(np.mean(list(per_speaker.values()))), "per_speaker": per_speaker,
                         "dim": int(x.shape[1])}
    report = {"protocol": "FSDD leave-one-speaker-out, ridge probe on frozen features", "clips": len(wavs),
              "results": results, "seconds": round(time.time() - start, 1)}
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
