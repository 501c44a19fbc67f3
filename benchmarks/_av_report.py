"""Markdown rendering of the AV-digits results JSON (tables + target checks)."""

from pathlib import Path

from benchmarks.common import write_text


def _pct(v):
    return "" if v is None else f"{100 * v:.2f}%"


def _load(run):
    """The 1-minute load average when the run started (runs before it was recorded: the table's start)."""
    return f"{run['load_avg_at_start'][0]:.1f}" if "load_avg_at_start" in run else "see above"


FUSED = ("fusion_concat", "fusion_gated", "fusion_attention", "fusion_transformer", "fusion_coattention", "fusion_lmf",
         "fusion_mult", "fusion_bottleneck", "fusion_perceiver", "fusion_gated_modality_dropout")


def _best_fused(variant_runs):
    """``(best fused accuracy, its run, better single-modality accuracy)`` or None if runs are missing."""
    if not all(k in variant_runs for k in ("image_only", "audio_only")) or not any(k in variant_runs for k in FUSED):
        return None
    best = max((variant_runs[n]["test_accuracy"], n) for n in FUSED if n in variant_runs)
    singles = max(variant_runs[k]["test_accuracy"] for k in ("image_only", "audio_only"))
    return best[0], best[1], singles


def target_checks(results):
    """The issue's targets, measured: list of ``(target, measured, met)``; skipped when a run is missing.

    "Fused" is every run with both modalities, the modality-dropout model included.
    """
    checks = []
    runs = results["runs"]
    clean, noisy = runs.get("clean", {}), runs.get("noisy", {})
    if best := _best_fused(clean):
        checks.append(("clean: best fused >= 99.3% and above both single-modality models",
                       f"{best[1]} {_pct(best[0])} vs image {_pct(clean['image_only']['test_accuracy'])}, "
                       f"audio {_pct(clean['audio_only']['test_accuracy'])}", best[0] >= 0.993 and best[0] > best[2]))
    if best := _best_fused(noisy):
        checks.append(("noisy: best fused >= better single + 3 points",
                       f"{best[1]} {_pct(best[0])} vs best single {_pct(best[2])} "
                       f"({100 * (best[0] - best[2]):+.2f} points)", best[0] - best[2] >= 0.03))
    drop = clean.get("fusion_gated_modality_dropout")
    if drop and all(k in clean for k in ("image_only", "audio_only", "fusion_gated")):
        img, aud = clean["image_only"]["test_accuracy"], clean["audio_only"]["test_accuracy"]
        ref = clean["fusion_gated"]["test_accuracy"]
        no_audio, no_image = drop["test_accuracy_audio_removed"], drop["test_accuracy_image_removed"]
        checks.append(("dropout model, audio absent: within 1 point of image-only",
                       f"{_pct(no_audio)} vs {_pct(img)}", no_audio >= img - 0.01))
        checks.append(("dropout model, image absent: within 2 points of audio-only",
                       f"{_pct(no_image)} vs {_pct(aud)}", no_image >= aud - 0.02))
        checks.append(("dropout model, both present: within 0.3 points of fusion_gated",
                       f"{_pct(drop['test_accuracy'])} vs {_pct(ref)}", drop["test_accuracy"] >= ref - 0.003))
    con = results.get("contrastive", {}).get("clean")
    if con:
        r1 = con["retrieval"]["audio->image"]["recall@1"]
        checks.append(("contrastive: audio->image class-level recall@1 >= 95%", _pct(r1), r1 >= 0.95))
    return checks


def write_markdown(results, path):
    m = results["machine"]
    lines = [
        "# AV-digits benchmark results", "",
        "Command: " + " then ".join(f"`{c}`" for c in results.get("commands") or [results["command"]])
        + f" (size `{results['size']}`"
        + (f", first {results['limit']} examples per split" if results.get("limit") else "") + ").",
        f"Machine: {m['cpu']}, {m['cores']} cores (load average at start "
        f"{', '.join(f'{v:.1f}' for v in m['load_avg_at_start'])}"
        + (f"; {m['note']}" if m.get("note") else "")
        + f"), Python {m['python']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}, "
        f"commit {m['git_commit'] or 'n/a'}."
        + "".join(f" Resumed table: earlier runs on {e['cpu']}, load average {e['load_avg_at_start'][0]:.1f} at "
                  f"start, commit {e['git_commit']}." for e in results.get("earlier_machines", [])),
        f"Started {results['started']}; elapsed {results.get('elapsed_seconds', 0) / 60:.1f} min; "
        + ("complete." if results["complete"] else "**partial: the run was still going or was cut short.**"),
        "", "## Test accuracy", "",
        "| variant | run | preset | params | epochs | train time (s) | load at start | test accuracy | "
        "image absent | audio absent |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, runs in results["runs"].items():
        for name, r in runs.items():
            lines.append(f"| {variant} | {name} | `{r['preset']}` | {r['params']:,} | {r['epochs']} | "
                         f"{r['train_seconds']:.0f} | {_load(r)} | {_pct(r['test_accuracy'])} | "
                         f"{_pct(r.get('test_accuracy_image_removed'))} | "
                         f"{_pct(r.get('test_accuracy_audio_removed'))} |")
    for variant, c in results.get("contrastive", {}).items():
        ret = c["retrieval"]
        lines += ["", f"## Cross-modal retrieval ({variant} test set, contrastive model)", "",
                  f"`{c['preset']}`: {c['params']:,} params, {c['epochs']} epochs, {c['train_seconds']:.0f} s, "
                  f"loss {c['loss_first_epoch']:.3f} -> {c['loss_last_epoch']:.3f}, "
                  f"learned temperature {c['temperature']:.4f}. Class-level recall (a hit is an item of the "
                  "same digit; gallery = all test examples of the other modality).", "",
                  "| direction | recall@1 | recall@5 |", "|---|---|---|"]
        for direction, rec in ret.items():
            lines.append(f"| {direction} | {_pct(rec['recall@1'])} | {_pct(rec['recall@5'])} |")
    for name, rob in results.get("robustness", {}).items():
        lines += ["", f"## Robustness: {name} (first {rob.get('test_examples', 'all')} clean test examples)", "",
                  f"![robustness plot]({Path(path).stem}_robustness_{name}.png)", "",
                  "| condition | accuracy |", "|---|---|"]
        lines += [f"| {r['condition']} | {_pct(r['accuracy'])} |" for r in rob["rows"]]
    checks = target_checks(results)
    if checks:
        lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {t} | {v} | {'yes' if ok else '**no**'} |" for t, v, ok in checks]
    if results.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    write_text(path, "\n".join(lines) + "\n")
