"""AV-digits multimodal VAE: linear probe on the joint latent, reconstruction error, cross-modal coherence.

One command (from the repository root)::

    .venv/bin/python benchmarks/av_vae.py              # clean, small size
    .venv/bin/python benchmarks/av_vae.py --limit 512 --epochs 1 --classifier-epochs 1 --out /tmp/vae/av_vae

It trains, on the same cached features as ``benchmarks/av_digits.py``:

1. the image-only classifier ``av_image_small`` (the judge of generated images);
2. the VAE ``av_vae_small`` without labels (image + audio, subset-sampled ELBO);

then measures on the test set:

- **linear probe**: a softmax layer trained on the frozen joint latent means of
  the training set (both modalities present), test accuracy; the same from the
  image alone and from the audio alone;
- **reconstruction error** per modality from the joint posterior and from the
  other modality alone: image pixel MSE and Bernoulli NLL (nats per example),
  audio log-mel MSE per element;
- **cross-modal coherence**: images generated from the audio alone
  (``model.generate(..., target="image")``), classified by the image-only
  classifier; the fraction that shows the spoken digit. Reported for the
  decoder's mean (the first decoding), after 1 and 2 refinement steps
  (``refine_steps``: the generated image re-encoded beside the audio, the joint
  posterior decoded again), and for the Bernoulli mode (``estimate="mode"``:
  pixels above 0.5) of the first decoding.

Writes ``benchmarks/results/av_vae.json`` and ``.md`` and a PNG grid of images
generated from audio.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.av_digits import load_variant, train_classifier  # noqa: E402
from benchmarks.presets import register_benchmark_presets  # noqa: E402
from mmkeras.evaluation.features import remove_modality  # noqa: E402

register_benchmark_presets()


def linear_probe(train_latent, y_train, test_latent, y_test, epochs, seed):
    """Softmax regression on frozen latents (standardised with the training statistics)."""
    import keras

    mean, std = train_latent.mean(0), train_latent.std(0) + 1e-6
    keras.utils.set_random_seed(seed)
    probe = keras.Sequential([keras.Input((train_latent.shape[1],)), keras.layers.Dense(10, activation="softmax")])
    probe.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    probe.fit((train_latent - mean) / std, y_train, epochs=epochs, batch_size=256, verbose=0)
    return float(probe.evaluate((test_latent - mean) / std, y_test, verbose=0)[1])


def reconstruction_errors(model, features):
    """Per-modality errors of the joint reconstruction and of each modality generated from the others."""
    joint = model.reconstruct(features, batch_size=256)
    out = {}
    for m in model.decoded:
        target = features[m]
        generated = model.generate(features, target=m, batch_size=256)
        out[m] = {"mse_joint": float(np.mean((joint[m] - target) ** 2)),
                  "mse_from_other_modality": float(np.mean((generated - target) ** 2))}
        if m == "image":  # Bernoulli NLL in nats per image
            p = np.clip(joint[m], 1e-6, 1 - 1e-6)
            out[m]["bernoulli_nll_joint"] = float(np.mean(np.sum(
                -(target * np.log(p) + (1 - target) * np.log(1 - p)), axis=(1, 2, 3))))
    return out


def template_accuracy(images, labels, train_images, train_labels):
    """A second judge with no learned features: nearest class-mean training image by correlation."""
    def standardise(x):
        x = x.reshape(len(x), -1).astype("float64")
        return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)

    means = standardise(np.stack([train_images[train_labels == d].mean(0) for d in range(10)]))
    return float(np.mean(np.argmax(standardise(images) @ means.T, axis=1) == np.asarray(labels)))


def rejudge(args):
    """Loads the model a run kept and adds the template judge's coherence to its results."""
    import json

    import keras

    out = Path(args.out)
    results = json.loads((out.parent / f"{out.name}.json").read_text())
    data = load_variant(args.variant, args)
    (_, y_tr, f_tr), (_, y_te, f_te) = data["train"], data["test"]
    model = keras.saving.load_model(Path(args.cache_dir) / f"{out.name}.keras")
    generated = model.generate(f_te, target="image", batch_size=256)
    y_tr = np.asarray(y_tr)
    results["vae"]["template_judge"] = {
        "command": "python benchmarks/av_vae.py --rejudge", "load_avg": [round(x, 2) for x in os.getloadavg()],
        "accuracy_on_real_test_images": template_accuracy(f_te["image"], y_te, f_tr["image"], y_tr),
        "coherence_audio_to_image": template_accuracy(generated, y_te, f_tr["image"], y_tr)}
    common.write_json(out.parent / f"{out.name}.json", results)
    common.write_text(out.parent / f"{out.name}.md", to_markdown(results))
    print(results["vae"]["template_judge"])


def save_grid(images, labels, path, per_class=8, title="Images generated from spoken digits alone"):
    """Images generated from audio, one row per spoken digit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(10, per_class, figsize=(per_class * 0.8, 10 * 0.8))
    for d in range(10):
        idx = np.flatnonzero(labels == d)[:per_class]
        for j in range(per_class):
            ax = axes[d, j]
            ax.axis("off")
            if j < len(idx):
                ax.imshow(images[idx[j], :, :, 0], cmap="gray", vmin=0, vmax=1)
        axes[d, 0].set_title(f"'{d}'", fontsize=7, loc="left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=["small", "full"])
    parser.add_argument("--variant", default="clean", choices=["clean", "noisy"])
    parser.add_argument("--epochs", type=int, default=20, help="VAE epochs")
    parser.add_argument("--classifier-epochs", type=int, default=6, help="epochs of the image-only judge")
    parser.add_argument("--probe-epochs", type=int, default=30)
    parser.add_argument("--override", default="{}",
                        help='JSON deep-merged into the preset, e.g. \'{"vae": {"beta": 2.0}}\'')
    parser.add_argument("--limit", type=int, default=0, help="use only the first N examples of each split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=common.default_data_dir())
    parser.add_argument("--cache-dir", default=str(common.REPO / "benchmarks" / ".cache"))
    parser.add_argument("--out", default=str(common.REPO / "benchmarks" / "results" / "av_vae"))
    parser.add_argument("--rejudge", action="store_true",
                        help="judge the images a finished run's kept model generates with the template judge too")
    args = parser.parse_args(argv)
    args.batch_size = 0  # the classifier keeps its preset's batch size (train_classifier reads it)
    if args.rejudge:
        return rejudge(args)

    import keras

    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    start = time.perf_counter()
    results = {"benchmark": "av_vae", "command": "python benchmarks/av_vae.py " + " ".join(argv or sys.argv[1:]),
               "size": args.size, "variant": args.variant, "limit": args.limit or None,
               "machine": common.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    data = load_variant(args.variant, args)
    _, y_tr, f_tr = data["train"]
    _, y_te, f_te = data["test"]

    print("=== image-only judge (av_image_small)", flush=True)
    judge, record = train_classifier("av_image_small", data, args, args.classifier_epochs)
    results["judge"] = record
    print(f"    test accuracy {record['test_accuracy']:.4f}", flush=True)

    print("=== VAE (av_vae_small)", flush=True)
    import json

    model, history, seconds = common.fit_unlabelled("av_vae_small", f_tr, args.epochs, args.seed,
                                                    **json.loads(args.override))
    vae = {"preset": "av_vae_small", "params": int(model.count_params()), "epochs": args.epochs,
           "batch_size": model.mm_config["training"]["batch_size"], "train_seconds": round(seconds, 1),
           "config": model.mm_config["vae"],
           "history_last_epoch": {k: float(v[-1]) for k, v in history.history.items()},
           "history_first_epoch": {k: float(v[0]) for k, v in history.history.items()},
           "kl_step": float(model.kl_step.numpy())}

    probe = {}
    for name, drop in (("joint", None), ("image_alone", "audio"), ("audio_alone", "image")):
        tr = f_tr if drop is None else remove_modality(f_tr, model.modalities, drop)
        te = f_te if drop is None else remove_modality(f_te, model.modalities, drop)
        probe[name] = linear_probe(model.embed(tr, batch_size=256)["embedding"], y_tr,
                                   model.embed(te, batch_size=256)["embedding"], y_te, args.probe_epochs, args.seed)
        print(f"    linear probe ({name}) {probe[name]:.4f}", flush=True)
    vae["linear_probe_accuracy"] = probe
    vae["reconstruction"] = reconstruction_errors(model, f_te)
    generated = model.generate(f_te, target="image", batch_size=256)

    def judged(images):
        scores = judge.predict({"image": images, "present": np.ones((len(y_te), 1), "float32")}, batch_size=256,
                               verbose=0)
        return float(np.mean(np.argmax(scores, axis=-1) == y_te))

    vae["coherence_audio_to_image"] = judged(generated)
    refined = {k: model.generate(f_te, target="image", batch_size=256, refine_steps=k) for k in (1, 2)}
    vae["coherence_audio_to_image_refined"] = {str(k): judged(images) for k, images in refined.items()}
    vae["coherence_audio_to_image_mode"] = judged(model.generate(f_te, target="image", batch_size=256,
                                                                 estimate="mode"))
    # The decoder's Bernoulli means are faint where the style is uncertain (strokes ~0.5, not 1);
    # dividing each image by its brightest pixel changes no shape, only the contrast the judge saw in training.
    vae["coherence_audio_to_image_contrast_normalised"] = judged(
        generated / np.maximum(generated.max(axis=(1, 2, 3), keepdims=True), 1e-6))
    vae["generated_max_pixel_mean"] = float(generated.max(axis=(1, 2, 3)).mean())
    vae["template_judge"] = {  # the second judge, with no learned features
        "accuracy_on_real_test_images": template_accuracy(f_te["image"], y_te, f_tr["image"], np.asarray(y_tr)),
        "coherence_audio_to_image": template_accuracy(generated, y_te, f_tr["image"], np.asarray(y_tr))}
    if model.mm_config["vae"]["private_dim"]:  # the image's private latent sampled from its prior
        styled = model.generate(f_te, target="image", batch_size=256, style_seed=args.seed)
        vae["coherence_audio_to_image_sampled_style"] = judged(styled)
        save_grid(styled, np.asarray(y_te), out.parent / f"{out.name}_generated_from_audio_sampled_style.png")
    print(f"    coherence audio -> image {vae['coherence_audio_to_image']:.4f} (contrast-normalised "
          f"{vae['coherence_audio_to_image_contrast_normalised']:.4f}, refined "
          f"{vae['coherence_audio_to_image_refined']}, mode {vae['coherence_audio_to_image_mode']:.4f})", flush=True)
    model.save(Path(args.cache_dir) / f"{out.name}.keras")  # for a second look (git-ignored)
    grid = out.parent / f"{out.name}_generated_from_audio.png"
    save_grid(generated, np.asarray(y_te), grid)
    vae["generated_grid"] = grid.name
    refined_grid = out.parent / f"{out.name}_generated_from_audio_refined2.png"
    save_grid(refined[2], np.asarray(y_te), refined_grid,
              title="Images generated from spoken digits alone, 2 refinement steps")
    vae["generated_grid_refined"] = refined_grid.name
    results["vae"] = vae
    refined_coherence = vae["coherence_audio_to_image_refined"]["2"]
    results["targets"] = [
        {"target": "cross-modal coherence (audio -> image, judged by av_image_small) >= 80%, first decoding",
         "measured": vae["coherence_audio_to_image"], "met": vae["coherence_audio_to_image"] >= 0.80},
        {"target": "same, generate(..., refine_steps=2)", "measured": refined_coherence,
         "met": refined_coherence >= 0.80},
        {"target": "linear probe on the joint latent >= 98%", "measured": probe["joint"],
         "met": probe["joint"] >= 0.98},
    ]
    results["elapsed_seconds"] = round(time.perf_counter() - start, 1)
    results["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    common.write_json(out.parent / f"{out.name}.json", results)  # names may hold dots ("weight_0.1")
    common.write_text(out.parent / f"{out.name}.md", to_markdown(results))
    print(to_markdown(results))


def to_markdown(results):
    v, j = results["vae"], results["judge"]
    rec = v["reconstruction"]
    lines = common.markdown_header("AV-digits multimodal VAE", results) + [
        f"VAE `{v['preset']}`: {v['params']:,} params, {v['epochs']} epochs, batch {v['batch_size']}, "
        f"{v['train_seconds']:.0f} s; last epoch: loss {v['history_last_epoch']['loss']:.1f}, KL "
        f"{v['history_last_epoch']['kl']:.1f} nats, image NLL {v['history_last_epoch']['image_nll']:.1f}, "
        f"audio NLL {v['history_last_epoch']['audio_nll']:.1f}.",
        f"Judge `av_image_small`: {j['epochs']} epochs, test accuracy {100 * j['test_accuracy']:.2f}%.", "",
        "| measure | value |", "|---|---|",
        f"| linear probe, joint latent (image + audio) | {100 * v['linear_probe_accuracy']['joint']:.2f}% |",
        f"| linear probe, image alone | {100 * v['linear_probe_accuracy']['image_alone']:.2f}% |",
        f"| linear probe, audio alone | {100 * v['linear_probe_accuracy']['audio_alone']:.2f}% |",
        f"| cross-modal coherence, image generated from audio | {100 * v['coherence_audio_to_image']:.2f}% |",
        f"| same, each generated image divided by its brightest pixel (mean brightest pixel "
        f"{v['generated_max_pixel_mean']:.2f}) | {100 * v['coherence_audio_to_image_contrast_normalised']:.2f}% |",
    ]
    if "coherence_audio_to_image_refined" in v:
        lines += [f"| same, after {k} refinement step{'s' if k != '1' else ''} (`refine_steps={k}`) | "
                  f"{100 * c:.2f}% |" for k, c in v["coherence_audio_to_image_refined"].items()]
        lines.append(f"| same, the first decoding's Bernoulli mode (`estimate=\"mode\"`: pixels > 0.5) | "
                     f"{100 * v['coherence_audio_to_image_mode']:.2f}% |")
    if "coherence_audio_to_image_sampled_style" in v:
        lines.append(f"| same, the image's private latent sampled from its prior (not its mean) | "
                     f"{100 * v['coherence_audio_to_image_sampled_style']:.2f}% |")
    if "template_judge" in v:
        t = v["template_judge"]
        lines.append(f"| coherence judged by nearest class-mean training image (correlation; "
                     f"this judge scores {100 * t['accuracy_on_real_test_images']:.2f}% on real test "
                     f"images) | {100 * t['coherence_audio_to_image']:.2f}% |")
    lines += [
        f"| image pixel MSE, joint / from audio alone | {rec['image']['mse_joint']:.4f} / "
        f"{rec['image']['mse_from_other_modality']:.4f} |",
        f"| image Bernoulli NLL per image, joint (nats) | {rec['image']['bernoulli_nll_joint']:.1f} |",
        f"| audio log-mel MSE per element, joint / from image alone | {rec['audio']['mse_joint']:.3f} / "
        f"{rec['audio']['mse_from_other_modality']:.3f} |", "",
        f"![images generated from audio]({v['generated_grid']})", "",
    ] + ([f"![images generated from audio, 2 refinement steps]({v['generated_grid_refined']})", ""]
         if "generated_grid_refined" in v else []) + [
        "| target | measured | met |", "|---|---|---|",
    ]
    lines += [f"| {t['target']} | {100 * t['measured']:.2f}% | {'yes' if t['met'] else '**no**'} |"
              for t in results["targets"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
