"""Why the CNN judge rejects the VAE's generated digits: the judge on real, blurred and decoded images.

One command (from the repository root), after ``benchmarks/av_vae.py`` kept its model::

    .venv/bin/python benchmarks/av_vae_judge.py            # reads benchmarks/.cache/av_vae.keras

Trains the judge ``av_image_small`` as ``av_vae.py`` does (6 epochs) and reports its
accuracy, and how many images it assigns to each digit, on: the real test images,
the real images blurred (Gaussian, sigma 1 pixel), the VAE's joint reconstructions
(image and audio present), the images generated from the audio alone (decoder
means; latent samples at temperature 0.5 and 1; after 1 and 2 refinement steps),
and those generated images thresholded at 0.25 / 0.35 / 0.5 (0.5 is the Bernoulli
mode). A diagnosis, not a coherence figure: a threshold picked on the test set is
tuned on it. ``--seed`` retrains the judge with another seed (how much the figures
depend on the judge). Writes ``benchmarks/results/av_vae_judge.json``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.av_digits import load_variant, train_classifier  # noqa: E402
from benchmarks.presets import register_benchmark_presets  # noqa: E402
from mmkeras.evaluation.features import remove_modality  # noqa: E402

register_benchmark_presets()


def gaussian_blur(images, sigma):
    """``[N, H, W, C]`` images blurred over H and W (separable Gaussian, radius 4 sigma, edges mirrored:
    scipy.ndimage.gaussian_filter's defaults)."""
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    out = images.astype("float64")
    for axis in (1, 2):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        size = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + size), axis=axis) for i, w in enumerate(kernel))
    return out.astype(images.dtype)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(common.REPO / "benchmarks" / ".cache" / "av_vae.keras"))
    parser.add_argument("--classifier-epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=common.default_data_dir())
    parser.add_argument("--cache-dir", default=str(common.REPO / "benchmarks" / ".cache"))
    parser.add_argument("--out", default=str(common.REPO / "benchmarks" / "results" / "av_vae_judge.json"))
    args = parser.parse_args(argv)
    args.size, args.limit, args.batch_size = "small", 0, 0

    import keras

    keras.utils.set_random_seed(args.seed)
    data = load_variant("clean", args)
    _, y_te, f_te = data["test"]
    y_te = np.asarray(y_te)
    judge, record = train_classifier("av_image_small", data, args, args.classifier_epochs)
    model = keras.saving.load_model(args.model)

    def judged(images):
        scores = judge.predict({"image": images, "present": np.ones((len(images), 1), "float32")},
                               batch_size=256, verbose=0)
        predicted = np.argmax(scores, axis=-1)
        return {"accuracy": float(np.mean(predicted == y_te)),
                "assigned_per_digit": np.bincount(predicted, minlength=10).tolist()}

    generated = model.generate(f_te, target="image", batch_size=256)
    posterior = model.embed(remove_modality(f_te, model.modalities, "image"), batch_size=256)
    rng = np.random.default_rng(args.seed)
    rows = {
        "real": judged(f_te["image"]),
        "real_blurred_sigma1": judged(gaussian_blur(f_te["image"], sigma=1.0)),
        "joint_reconstruction": judged(model.reconstruct(f_te, batch_size=256)["image"]),
        "generated_from_audio_mean": judged(generated),
    }
    for t in (0.5, 1.0):
        z = posterior["embedding"] + t * np.exp(0.5 * posterior["log_var"]) * rng.standard_normal(
            posterior["embedding"].shape).astype("float32")
        rows[f"generated_from_audio_sample_t{t}"] = judged(model.decode("image", z))
    for k in (1, 2):
        rows[f"generated_from_audio_refined_{k}"] = judged(model.generate(f_te, target="image", batch_size=256,
                                                                          refine_steps=k))
    for t in (0.25, 0.35, 0.5):
        rows[f"generated_thresholded_{t}"] = judged((generated > t).astype("float32"))
    result = {"benchmark": "av_vae_judge", "command": "python benchmarks/av_vae_judge.py " + " ".join(
        argv or sys.argv[1:]), "machine": common.machine(), "judge": record, "model": args.model, "rows": rows}
    common.write_json(Path(args.out), result)
    for name, row in rows.items():
        print(f"{name:40s} {100 * row['accuracy']:6.2f}%  {row['assigned_per_digit']}")


if __name__ == "__main__":
    main()
