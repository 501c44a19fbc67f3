"""A real `mmkeras.tune` run on AV-digits: best configuration, single-modality baselines, verdict, timings.

One command (from the repository root)::

    .venv/bin/python -m benchmarks.tune_av_digits --budget-minutes 8

It tunes ``--preset`` (default ``av_gated_small``) on the first ``--train``
AV-digits training pairs, validates on the next ``--val`` ones (model and epoch
selection, the verdict), and touches ``--test`` pairs of the test split once,
after selection. It writes ``benchmarks/results/tune_av_digits.json`` and ``.md``:
the best configuration, validation and test accuracy of the fused model and each
modality alone, the verdict, the wall time and KerasTuner's bookkeeping share
(search time outside ``model.fit``).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmkeras  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.av_speakers import SPEAKERS  # noqa: E402
from benchmarks.presets import register_benchmark_presets  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("clean", "noisy"), default="noisy")
    parser.add_argument("--preset", default="av_gated_small")
    parser.add_argument("--budget-minutes", type=float, default=8.0)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--algorithm", choices=("hyperband", "bayesian"), default="hyperband")
    parser.add_argument("--train", type=int, default=4000, help="training pairs (the first of the train split)")
    parser.add_argument("--val", type=int, default=1000, help="validation pairs (the next ones)")
    parser.add_argument("--test", type=int, default=2000, help="test pairs (the first of the test split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out-speaker", help="train and validate on the other FSDD speakers' clips, test on "
                        "this speaker's (the leave-one-speaker-out protocol of benchmarks/av_speakers.py)")
    parser.add_argument("--result", default="tune_av_digits", help="results file name under benchmarks/results/")
    parser.add_argument("--out", default="/tmp/mmkeras_tune_av_digits")
    parser.add_argument("--data-dir", default=common.default_data_dir())
    args = parser.parse_args()
    register_benchmark_presets()
    info = common.machine()
    start = time.perf_counter()
    train_speakers = test_speakers = None
    if args.held_out_speaker:
        train_speakers = [s for s in SPEAKERS if s != args.held_out_speaker]
        test_speakers = [args.held_out_speaker]
    x, y = mmkeras.datasets.av_digits("train", variant=args.variant, data_dir=args.data_dir, speakers=train_speakers)
    xt, yt = mmkeras.datasets.av_digits("test", variant=args.variant, data_dir=args.data_dir, speakers=test_speakers)

    def part(arrays, labels, lo, hi):
        return {k: v[lo:hi] for k, v in arrays.items()}, labels[lo:hi]

    train, val = part(x, y, 0, args.train), part(x, y, args.train, args.train + args.val)
    test = part(xt, yt, 0, args.test)
    result = mmkeras.tune(train, val, args.preset, args.out, num_classes=10, budget_minutes=args.budget_minutes,
                          algorithm=args.algorithm, max_epochs=args.max_epochs, test_data=test, seed=args.seed,
                          export=False)
    elapsed = time.perf_counter() - start
    info["load_avg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    summary = result.summary
    out = {"machine": info, "variant": args.variant, "size": "small", "preset": args.preset,
           "held_out_speaker": args.held_out_speaker,
           "train": args.train, "val": args.val, "test": args.test, "elapsed_seconds": round(elapsed, 1),
           "summary": summary}
    path = common.write_result(args.result, out, module="tune_av_digits")
    command = json.loads(path.read_text())["command"]
    lines = common.markdown_header("mmkeras tune on AV-digits", {**out, "command": command, "limit": None})
    held_out = (f" Speaker `{args.held_out_speaker}` held out: training and validation pairs use the other five "
                f"speakers' clips, test pairs only this speaker's." if args.held_out_speaker else "")
    lines += [f"Data: the first {args.train} training pairs, the next {args.val} for validation, the first "
              f"{args.test} test pairs (touched once, after selection).{held_out} Preset `{args.preset}`, "
              f"{args.algorithm}, max {args.max_epochs} epochs per trial, budget {args.budget_minutes} min "
              f"shared by {len(summary['searches'])} searches, seed {args.seed}.", "",
              (Path(args.out) / "summary.md").read_text(),
              f"Search time {summary['search_seconds']:.0f} s, of which model.fit {summary['fit_seconds']:.0f} s: "
              f"KerasTuner bookkeeping (building models, checkpoints, oracle, HParams logs) "
              f"{summary['bookkeeping_share_of_search']:.1%} of the search. Whole run (loading, preprocessing, "
              f"searches, selection, test, saving) {elapsed:.0f} s.", ""]
    common.write_text(path.with_suffix(".md"), "\n".join(lines))


if __name__ == "__main__":
    main()
