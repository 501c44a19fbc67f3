"""Explanations on AV-digits noisy: which modality does a trained gated-fusion model rely on?

One command (from the repository root)::

    .venv/bin/python benchmarks/av_explain.py           # noisy variant, small size
    .venv/bin/python benchmarks/av_explain.py --limit 512 --epochs 1 --out /tmp/explain/av_explain

It trains ``av_gated_small`` (6 epochs, as ``benchmarks/av_digits.py`` does) on
the noisy variant, where the image alone is far more accurate than the audio
alone, then:

- exact Shapley values over modality presence (``mmkeras.explain``'s
  :func:`~mmkeras.evaluation.explain.shapley_values`) for the predicted class on
  the whole test set: mean value per modality, how often the image's exceeds the
  audio's, split by whether the prediction is right;
- the full explanation (Shapley + integrated gradients with the completeness
  gap, and the figure) of the first few test examples, with the figure of the
  first written to ``benchmarks/results/av_explain.png``.

Writes ``benchmarks/results/av_explain.json`` and ``.md``.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmkeras  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.av_digits import load_variant, select, train_classifier  # noqa: E402
from benchmarks.presets import register_benchmark_presets  # noqa: E402
from mmkeras.evaluation.explain import shapley_values  # noqa: E402
from mmkeras.evaluation.features import remove_modality  # noqa: E402

register_benchmark_presets()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=["small", "full"])
    parser.add_argument("--variant", default="noisy", choices=["clean", "noisy"])
    parser.add_argument("--preset", default="av_gated_small")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--examples", type=int, default=4, help="test examples explained in full (IG + figure)")
    parser.add_argument("--steps", type=int, default=128, help="integrated-gradients steps")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=common.default_data_dir())
    parser.add_argument("--cache-dir", default=str(common.REPO / "benchmarks" / ".cache"))
    parser.add_argument("--out", default=str(common.REPO / "benchmarks" / "results" / "av_explain"))
    args = parser.parse_args(argv)
    args.batch_size = 0

    import keras

    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    start = time.perf_counter()
    command = "python benchmarks/av_explain.py " + " ".join(argv or sys.argv[1:])
    results = {"benchmark": "av_explain", "command": command,
               "size": args.size, "variant": args.variant, "limit": args.limit or None,
               "machine": common.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    data = load_variant(args.variant, args)
    model, record = train_classifier(args.preset, data, args, args.epochs)
    _, y_te, f_te = data["test"]
    f_te = select(f_te, model.modalities)
    for m in model.modalities:
        record[f"test_accuracy_{m}_removed"] = common.accuracy(model, remove_modality(f_te, model.modalities, m), y_te)
    results["model"] = record
    print(record, flush=True)

    predicted = np.argmax(model.predict(f_te, batch_size=256, verbose=0), axis=-1)
    with common.Timer() as t:
        phi, coalitions = shapley_values(model, f_te, predicted)
    right = predicted == np.asarray(y_te)
    image, audio = (model.modalities.index(m) for m in ("image", "audio"))
    summary = {"test_examples": int(len(predicted)), "seconds": round(t.seconds, 1),
               "mean": {m: float(phi[:, i].mean()) for i, m in enumerate(model.modalities)},
               "mean_correct": {m: float(phi[right, i].mean()) for i, m in enumerate(model.modalities)},
               "mean_wrong": {m: float(phi[~right, i].mean()) for i, m in enumerate(model.modalities)}
               if (~right).any() else None,
               "image_above_audio": float(np.mean(phi[:, image] > phi[:, audio])),
               "max_efficiency_error": float(np.max(np.abs(phi.sum(1) - (coalitions[(0, 1)] - coalitions[()]))))}
    results["shapley_test_set"] = summary
    print(summary, flush=True)

    n = args.examples
    with common.Timer() as t:
        explanations = mmkeras.explain(model, {k: v[:n] for k, v in f_te.items()}, steps=args.steps)
    results["explained"] = {"seconds": round(t.seconds, 1), "steps": args.steps,
                            "examples": [{**e.to_dict(), "label": int(y_te[e.index])} for e in explanations]}
    explanations[0].save_png(out.with_suffix(".png"))
    results["figure"] = out.with_suffix(".png").name
    results["elapsed_seconds"] = round(time.perf_counter() - start, 1)
    results["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    common.write_json(out.with_suffix(".json"), results)
    common.write_text(out.with_suffix(".md"), to_markdown(results))
    print(to_markdown(results))


def _pct(v):
    return f"{100 * v:.2f}%"


def to_markdown(r):
    rec, s = r["model"], r["shapley_test_set"]
    lines = common.markdown_header("Explanations on AV-digits", r) + [
        f"Model `{rec['preset']}`, {rec['epochs']} epochs, {rec['train_seconds']:.0f} s: test accuracy "
        f"{_pct(rec['test_accuracy'])}; image removed {_pct(rec['test_accuracy_image_removed'])}, audio removed "
        f"{_pct(rec['test_accuracy_audio_removed'])}.", "",
        f"## Shapley values over modality presence ({s['test_examples']:,} test examples, predicted class, "
        f"{s['seconds']:.0f} s)", "",
        "| | image | audio |", "|---|---|---|",
        f"| mean, all | {s['mean']['image']:+.4f} | {s['mean']['audio']:+.4f} |",
        f"| mean, correct predictions | {s['mean_correct']['image']:+.4f} | {s['mean_correct']['audio']:+.4f} |",
    ]
    if s["mean_wrong"]:
        lines.append(f"| mean, wrong predictions | {s['mean_wrong']['image']:+.4f} | {s['mean_wrong']['audio']:+.4f} |")
    lines += ["", f"Image value above audio value in {_pct(s['image_above_audio'])} of examples; largest "
              f"efficiency error |sum - (p(all) - p(none))| {s['max_efficiency_error']:.2e}.", "",
              f"## Full explanations (integrated gradients, {r['explained']['steps']} steps; "
              f"{r['explained']['seconds']:.0f} s for {len(r['explained']['examples'])})", "",
              f"![explanation of test example 0]({r['figure']})", "",
              "| example | label | predicted (p) | Shapley image | Shapley audio | IG image | IG audio | "
              "IG sum vs f(x)-f(baseline) |", "|---|---|---|---|---|---|---|---|"]
    for e in r["explained"]["examples"]:
        ig, c = e["integrated_gradients_per_modality"], e["ig_completeness"]
        lines.append(f"| {e['index']} | {e['label']} | {e['class_name']} ({e['probability']:.3f}) | "
                     f"{e['shapley']['image']:+.3f} | {e['shapley']['audio']:+.3f} | {ig['image']:+.3f} | "
                     f"{ig['audio']:+.3f} | {c['attribution_sum']:+.4f} vs {c['gap']:+.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
