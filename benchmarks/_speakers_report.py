"""Markdown rendering of the leave-one-speaker-out results JSON (fold tables + target checks)."""

from benchmarks.common import write_text

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def _pct(v):
    return "" if v is None else f"{100 * v:.2f}"


def _rows(table, runs):
    """``(label, {fold: accuracy}, mean train seconds)`` per run and per fused run with a modality removed."""
    shared = table.get("any_speaker", {})
    names = [n for n in runs if n in shared or any(n in table.get(f, {}) for f in SPEAKERS)]
    rows = []
    for name in names:
        records = {f: shared.get(name) or table.get(f, {}).get(name) for f in SPEAKERS}
        records = {f: r for f, r in records.items() if r}
        seconds = sum(r["train_seconds"] for r in records.values()) / len(records)
        rows.append((name, {f: r["test_accuracy"] for f, r in records.items()}, seconds))
        for m in ("image", "audio"):
            removed = {f: r[f"test_accuracy_{m}_removed"] for f, r in records.items()
                       if f"test_accuracy_{m}_removed" in r}
            if removed:
                rows.append((f"{name}, {m} removed", removed, None))
    return rows


def target_checks(table):
    """The issue's leave-one-speaker-out targets for ``fusion_robust``: ``(target, measured, met)``."""
    shared, checks = table.get("any_speaker", {}), []
    folds = [f for f in SPEAKERS if "fusion_robust" in table.get(f, {}) and "image_only" in shared]
    if not folds:
        return checks
    margins, fused = [], []
    for f in folds:
        audio = [r["test_accuracy"] for n, r in table[f].items() if n.startswith("audio_")]
        image = [r["test_accuracy"] for n, r in shared.items() if n.startswith("image_only")]
        best_single = max(image + audio)
        acc = table[f]["fusion_robust"]["test_accuracy"]
        margins.append((f, 100 * (acc - best_single)))
        fused.append(acc)
    checks.append(("fusion_robust >= max(every image-only run, every audio-only run) + 0.5 points in every fold",
                   ", ".join(f"{f} {m:+.2f}" for f, m in margins), all(m >= 0.5 for _, m in margins)))
    mean = sum(fused) / len(fused)
    checks.append(("mean fused >= 98.8%", f"{100 * mean:.2f}% over {len(fused)} folds", mean >= 0.988))
    audio = [table[f]["audio_robust"]["test_accuracy"] for f in folds if "audio_robust" in table[f]]
    if audio:
        m = sum(audio) / len(audio)
        checks.append(("robust audio-only on the held-out speaker >= 85% mean", f"{100 * m:.2f}%", m >= 0.85))
    times = {n: [table[f][n]["train_seconds"] for f in folds if n in table[f]] for n in ("fusion_robust",
                                                                                      "fusion_concat")}
    if all(times.values()):
        ratio = (sum(times["fusion_robust"]) / len(times["fusion_robust"])) / (
            sum(times["fusion_concat"]) / len(times["fusion_concat"]))
        checks.append(("robust training time within 1.5x of av_concat_small", f"{ratio:.2f}x", ratio <= 1.5))
    for fold, target, threshold in (("noisy", "noisy variant: fused >= 95%", 0.95),
                                    ("seen", "clean, seen speakers: fused >= 99.5%", 0.995)):
        if "fusion_robust" in table.get(fold, {}):
            acc = table[fold]["fusion_robust"]["test_accuracy"]
            checks.append((target, f"{100 * acc:.2f}%", acc >= threshold))
    return checks


def write_markdown(results, path, runs):
    m = results["machine"]
    lines = ["# AV-digits, leave one speaker out", "",
             "Commands: " + " then ".join(f"`{c}`" for c in results["commands"]) + ".",
             f"Machine: {m['cpu']}, {m['cores']} cores, load average {m['load_avg_at_start'][0]:.1f} at start"
             + (f" ({m['note']})" if m.get("note") else "") + f"; Keras {m['keras']}, commit {m['git_commit']}. "
             f"Started {results['started']}, updated {results['updated']}"
             + ("." if results.get("finished") else " (**partial**: runs still going or cut short)."), "",
             "Test accuracy (%) on the held-out speaker's clips paired with MNIST test images; `image_only` does "
             "not depend on the speakers and was trained once. Empty cell: not run.", ""]
    for epochs, table in sorted(results["results"].items(), key=lambda kv: int(kv[0])):
        lines += [f"## {epochs} epochs", "", "| run | " + " | ".join(SPEAKERS) + " | mean | worst | train s |",
                  "|---|" + "---|" * (len(SPEAKERS) + 3)]
        for label, accs, seconds in _rows(table, runs):
            cells = [_pct(accs.get(f)) for f in SPEAKERS]
            full = len(accs) == len(SPEAKERS)
            mean = _pct(sum(accs.values()) / len(accs)) + ("" if full else f" ({len(accs)} folds)")
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {mean} | {_pct(min(accs.values()))} | "
                         + ("" if seconds is None else f"{seconds:.0f}") + " |")
        extra = [(f, n, r) for f in ("seen", "noisy") for n, r in table.get(f, {}).items()]
        if extra:
            lines += ["", "Standard protocol (every speaker): `seen` = clean, `noisy` = noisy variant.", "",
                      "| fold | run | test | image removed | audio removed | train s |", "|---|---|---|---|---|---|"]
            lines += [f"| {f} | {n} | {_pct(r['test_accuracy'])} | {_pct(r.get('test_accuracy_image_removed'))} | "
                      f"{_pct(r.get('test_accuracy_audio_removed'))} | {r['train_seconds']:.0f} |" for f, n, r in extra]
        checks = target_checks(table)
        if checks:
            lines += ["", "| target | measured | met |", "|---|---|---|"]
            lines += [f"| {t} | {v} | {'yes' if ok else '**no**'} |" for t, v, ok in checks]
        lines.append("")
    lines += ["## Runs", "", "| run | preset | build_model overrides |", "|---|---|---|"]
    lines += [f"| {n} | `{p}` | `{o}` |" for n, (p, o) in runs.items()]
    write_text(path, "\n".join(lines) + "\n")
