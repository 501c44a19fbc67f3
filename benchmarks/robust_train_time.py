"""Issue 24's training-time target: ``av_robust_small`` within 1.5x of ``av_concat_small``, as a user's fit.

Both presets are fitted on the raw PNG + WAV bytes of one leave-one-speaker-out
fold (the other five speakers' 10,000 training pairs), 3 epochs, as
``model.fit(x, y)`` on raw arrays meets them: ``av_concat_small`` preprocesses once
and trains on the cached features; ``av_robust_small``'s waveform silence makes its
audio features new every epoch. A third run, ``robust_streaming`` (``fit(...,
cache=False)``), is the robust preset as every raw augmented fit ran before the
per-epoch cache: every modality preprocessed every epoch, beside the train step.

Each fit runs in its own process (no state carried between them), the runs in
turn, ``--reps`` rounds; the machine's speed drifts by tens of percent within
minutes, so the table gives medians of wall time and of the process's CPU time
(user + system), and the ratio of each round's pair.

Usage: python benchmarks/robust_train_time.py [--fold george] [--reps 4] [--epochs 3]
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
RUNS = {"concat": ("av_concat_small", True), "robust": ("av_robust_small", True),
        "robust_streaming": ("av_robust_small", False)}


def one_fit(run, fold, epochs, data_dir, seed=0):
    """Fits one run in this process; prints ``{"wall_s", "cpu_s", "accuracy"}`` as JSON."""
    import mmkeras
    from benchmarks.presets import register_benchmark_presets

    register_benchmark_presets()
    preset, cache = RUNS[run]
    others = [s for s in SPEAKERS if s != fold]
    x, y = mmkeras.datasets.av_digits("train", "clean", "small", data_dir=data_dir, speakers=others)
    test_x, test_y = mmkeras.datasets.av_digits("test", "clean", "small", data_dir=data_dir, speakers=[fold])
    x, test_x = ({m: d[m] for m in ("image", "audio")} for d in (x, test_x))
    model = mmkeras.build_model(preset, num_classes=10, seed=seed)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    model.fit(x, y, epochs=epochs, verbose=0, cache=cache)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "accuracy": common.accuracy(model, test_x, test_y)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", default="george", choices=SPEAKERS, help="the held-out speaker")
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--data-dir", default=common.default_data_dir())
    parser.add_argument("--out", default=str(common.REPO / "benchmarks" / "results" / "robust_train_time"))
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one fit in this process
    args = parser.parse_args(argv)
    if args.one:
        return one_fit(args.one, args.fold, args.epochs, args.data_dir)
    machine = common.machine()
    fits = {run: [] for run in args.runs}
    for rep in range(args.reps):
        for run in args.runs:
            out = subprocess.run([sys.executable, __file__, "--one", run, "--fold", args.fold, "--epochs",
                                  str(args.epochs), "--data-dir", args.data_dir], capture_output=True, text=True,
                                 check=True).stdout
            fits[run].append(json.loads(out.strip().splitlines()[-1]))
            print(f"round {rep + 1} {run}: {fits[run][-1]}", flush=True)
    command = "python benchmarks/robust_train_time.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = ["# Training time of the robust preset against av_concat_small (issue 24)", "",
             f"Command: `{command}`. Fold `{args.fold}` (train on the other speakers' 10,000 raw PNG + WAV pairs), "
             f"{args.epochs} epochs, `model.fit(x, y)` on raw arrays, each fit in its own process, "
             f"{args.reps} rounds.", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores, load average "
             f"{machine['load_avg_at_start'][0]:.1f} at start; Keras {machine['keras']}, commit "
             f"{machine['git_commit']}.", "",
             "| run | wall s (median) | CPU s (median) | wall / concat, per round | CPU / concat, per round | test % |",
             "|---|---|---|---|---|---|"]
    result = {"command": command, "fold": args.fold, "epochs": args.epochs, "machine": machine, "fits": fits}
    for run in args.runs:
        wall = common.median([f["wall_s"] for f in fits[run]])
        cpu = common.median([f["cpu_s"] for f in fits[run]])
        ratios = " | "
        if "concat" in fits and run != "concat":
            cells = []
            for measure in ("wall", "cpu"):  # each round's ratio to the concat fit of the same round
                per_round = [a[f"{measure}_s"] / b[f"{measure}_s"] for a, b in zip(fits[run], fits["concat"])]
                result.setdefault(f"{run}_ratio", {})[f"{measure}_median"] = common.median(per_round)
                cells.append(f"{common.median(per_round):.2f}x ({', '.join(f'{r:.2f}' for r in per_round)})")
            ratios = " | ".join(cells)
        accuracy = common.median([f["accuracy"] for f in fits[run]]) * 100
        lines.append(f"| {run} | {wall:.1f} | {cpu:.1f} | {ratios} | {accuracy:.2f} |")
    print("\n".join(lines))
    common.write_json(args.out + ".json", result)
    common.write_text(args.out + ".md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
