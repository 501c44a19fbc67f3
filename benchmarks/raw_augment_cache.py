"""What a raw ``fit`` with a training-only waveform augmentation spends on the other modalities.

With ``waveform_augment`` on the audio, the audio features of a raw ``fit`` must be
computed every epoch (each epoch draws new perturbations). Until this benchmark's
commit every modality was then preprocessed every epoch, the images too; now
``fit(cache=True)`` (the default) decodes and resizes the images once
(``RawInputs.partly_cached_dataset``) and ``fit(cache=False)`` keeps the old
behaviour, so the two are compared in one process, alternating, median of
``--reps``:

- the input pipeline alone: one epoch of feature batches, no model;
- a whole ``fit`` of ``image_audio_robust_small`` (its audio has waveform silence).

The images are photo-sized JPEGs (``--size`` pixels square, smooth random shapes, made
here) and the clips 1 s of 16 kHz noise bursts: what a user's files cost to decode, not
AV-digits' 28x28 PNGs.

Usage: PYTHONPATH=. python -m benchmarks.raw_augment_cache [--n 2000] [--size 256] [--epochs 2] [--reps 3]
"""

import argparse
import io
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import mmkeras  # noqa: E402
from benchmarks.common import machine, median, write_result, write_text  # noqa: E402
from mmkeras.codecs import encode_wav  # noqa: E402
from mmkeras.data.pipeline import RawInputs  # noqa: E402
from mmkeras.training.shuffle import set_epoch  # noqa: E402

PRESET = "image_audio_robust_small"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="training examples")
    p.add_argument("--size", type=int, default=256, help="JPEG side in pixels")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no_write", action="store_true")
    return p.parse_args(argv)


def make_examples(n, size, seed=0):
    """``n`` (JPEG, WAV) pairs and labels: smooth random images, 1 s clips of noise bursts."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, size, dtype=np.float32)
    images, clips = [], []
    for _ in range(n):
        cx, cy, r = rng.uniform(0.2, 0.8, 3)
        disc = ((grid[None, :] - cx) ** 2 + (grid[:, None] - cy) ** 2 < (0.3 * r) ** 2).astype(np.float32)
        rgb = np.stack([disc * rng.uniform(0.3, 1.0) + grid[None, :] * rng.uniform(0, 0.5)
                        for _ in range(3)], axis=-1)
        buffer = io.BytesIO()
        Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
        wave = np.zeros(16000, np.float32)
        start = rng.integers(0, 8000)
        wave[start:start + 6000] = 0.2 * rng.standard_normal(6000).astype(np.float32)
        clips.append(encode_wav(wave, 16000))
    return {"image": np.array(images, dtype=object), "audio": np.array(clips, dtype=object)}, rng.integers(0, 10, n)


def one_epoch(model, x, y, cache):
    """Seconds to build the training pipeline and to run one epoch of it (no model)."""
    t0 = time.perf_counter()
    dataset = RawInputs(model).prepare(x, y, None, shuffle=True, training=True, cache=cache)[0]
    t1 = time.perf_counter()
    set_epoch(0)
    for _ in dataset:
        pass
    return t1 - t0, time.perf_counter() - t1


def whole_fit(x, y, cache, epochs):
    model = mmkeras.build_model(PRESET, num_classes=10, seed=0)
    t0 = time.perf_counter()
    model.fit(x, y, epochs=epochs, verbose=0, cache=cache)
    return time.perf_counter() - t0


def main(argv=None):
    args = parse_args(argv)
    x, y = make_examples(args.n, args.size)
    model = mmkeras.build_model(PRESET, num_classes=10, seed=0)
    assert model.preprocessor.raw_augmented() == ["audio"], model.preprocessor.raw_augmented()
    names = {True: "images once (cache=True)", False: "every modality every epoch (cache=False)"}
    pipeline = {c: [] for c in names}
    fits = {c: [] for c in names}
    for _ in range(args.reps):
        for cache in names:
            pipeline[cache].append(one_epoch(model, x, y, cache))
    for _ in range(args.reps):
        for cache in names:
            fits[cache].append(whole_fit(x, y, cache, args.epochs))
    result = {"preset": PRESET, "n": args.n, "size": args.size, "epochs": args.epochs, "reps": args.reps,
              "machine": machine()}
    lines = ["# A raw fit with waveform augmentation: the images preprocessed once", "",
             f"Command: `PYTHONPATH=. python -m benchmarks.raw_augment_cache --n {args.n} --size {args.size} "
             f"--epochs {args.epochs} --reps {args.reps}`. Preset `{PRESET}` (waveform silence on the audio), "
             f"{args.n} examples of a {args.size}x{args.size} JPEG and a 1 s 16 kHz WAV, median of {args.reps}, "
             f"alternating.", "",
             f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, load average "
             f"{result['machine']['load_avg_at_start'][0]:.1f} at start; Keras {result['machine']['keras']}, "
             f"commit {result['machine']['git_commit']}.", "",
             "| training pipeline | build s | one epoch of batches s | whole fit s |", "|---|---|---|---|"]
    for cache, name in names.items():
        build, epoch = median([b for b, _ in pipeline[cache]]), median([e for _, e in pipeline[cache]])
        result[f"cache_{cache}"] = {"build_s": build, "epoch_s": epoch, "fit_s": median(fits[cache]),
                                    "fit_s_all": fits[cache], "pipeline_all": pipeline[cache]}
        lines.append(f"| {name} | {build:.1f} | {epoch:.1f} | {median(fits[cache]):.1f} |")
    print("\n".join(lines))
    if not args.no_write:
        path = write_result("raw_augment_cache", result)
        write_text(path.with_suffix(".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
