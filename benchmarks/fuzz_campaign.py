"""Fuzzing campaign against the exported serving graph, run the way TF Serving runs it.

Exports ``image_audio_text_small`` (10 classes), then sends every case of
``tests/serving_utils/fuzz_cases.py`` (the fixed hostile families plus
``--mutations`` seeded random mutations of real MNIST/FSDD bytes) to a TF-only
worker process that feeds the signature tensors through the session's C API, as
the C++ server does. The parent watches the worker's memory, times every case,
and restarts the worker after a crash, a hang or a memory blow-up.

Reported: cases per family and outcome, crashes, hangs, memory blow-ups, NaN/Inf
outputs, errors that do not name their input, peak resident memory and which case
set it, per-case time percentiles and the slowest cases, the distinct error
messages. Results go to ``benchmarks/results/fuzz_campaign.{json,md}``.

Usage: python benchmarks/fuzz_campaign.py [--mutations 900] [--seed 1] [--rss_limit_mb 2048]
"""

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402
from serving_utils import fuzz_cases, fuzz_runner  # noqa: E402

import mmkeras  # noqa: E402
from benchmarks.common import machine, write_json, write_text  # noqa: E402

PRESET = fuzz_cases.PRESET


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutations", type=int, default=900, help="random mutations of real files (plus fixed families)")
    p.add_argument("--valid", type=int, default=40, help="valid requests mixed in")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rss_limit_mb", type=int, default=2048, help="peak resident memory the worker must stay under")
    p.add_argument("--time_limit_s", type=float, default=10.0, help="longest any one case may take")
    p.add_argument("--timeout_s", type=float, default=120.0, help="a case running longer is a hang (worker killed)")
    p.add_argument("--kill_mb", type=int, default=8192, help="resident memory at which the worker is killed")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "fuzz_campaign.json"))
    return p.parse_args(argv)


def _message_kind(result):
    """An error message with numbers and quoted values removed, to group similar errors."""
    text = fuzz_runner.mmkeras_message(result["message"]).split("\n")[0]
    text = re.sub(r"example \d+", "example N", text)
    return re.sub(r"\d+", "N", text)[:160]


def summarise(results, info, args):
    families = collections.defaultdict(collections.Counter)
    for r in results:
        families[r["family"]][r["outcome"] if r["outcome"] != "answered" else ("answered" if r["ok"] else
                                                                                 "invalid_argument")] += 1
    answered = [r for r in results if r["outcome"] == "answered"]
    seconds = np.array([r["seconds"] for r in answered])
    peak = max(answered, key=lambda r: r["maxrss_kb"])
    errors = collections.Counter(_message_kind(r) for r in answered if not r["ok"])
    problems = fuzz_runner.problems(results, args.rss_limit_mb * 1024, args.time_limit_s)
    slowest = sorted(answered, key=lambda r: -r["seconds"])[:8]
    return {
        "cases": len(results),
        "outcomes": dict(collections.Counter(r["outcome"] for r in results)),
        "answered_ok": sum(r["ok"] for r in answered),
        "invalid_argument": sum(not r["ok"] for r in answered),
        "crashes": sum(r["outcome"] == "crash" for r in results),
        "hangs": sum(r["outcome"] == "hang" for r in results),
        "memory_blowups": sum(r["outcome"] == "memory" for r in results)
        + sum(r["outcome"] == "answered" and r["maxrss_kb"] > args.rss_limit_mb * 1024 for r in results),
        "nan_or_inf_outputs": sum(r["ok"] and not r["finite"] for r in answered),
        "unnamed_errors": sum(not r["ok"] and not fuzz_runner.names_the_input(r) for r in answered),
        "contract_problems": problems,
        "worker_restarts": info["restarts"],
        "worker_start": info["ready"],
        "peak_rss_mb": peak["maxrss_kb"] / 1024,
        "peak_rss_case": {k: peak[k] for k in ("id", "family", "seconds")},
        "seconds_per_case": {"p50": float(np.median(seconds)), "p99": float(np.percentile(seconds, 99)),
                             "max": float(seconds.max())},
        "slowest": [{k: r[k] for k in ("id", "family", "seconds", "ok", "request_bytes")} for r in slowest],
        "families": {f: dict(c) for f, c in sorted(families.items())},
        "error_messages": dict(errors.most_common()),
    }


def markdown(info):
    s = info["summary"]
    lines = [
        "# Fuzzing campaign against the exported serving graph",
        "",
        f"`{info['command']}` on {info['machine']['cpu']} ({info['machine']['cores']} cores), load average "
        f"{info['machine']['load_avg_at_start'][0]:.1f} at start, {info['load_avg_at_end'][0]:.1f} at end; "
        f"{info['wall_s']:.0f} s in all. Model: `{info['preset']}`, served by a TF-only worker through the "
        "session C API (as TF Serving feeds tensors: no shape check on the fed values).",
        "",
        "| | |",
        "|---|---|",
        f"| cases | {s['cases']} |",
        f"| answered (scores) | {s['answered_ok']} |",
        f"| INVALID_ARGUMENT | {s['invalid_argument']} |",
        f"| crashes / hangs / memory blow-ups | {s['crashes']} / {s['hangs']} / {s['memory_blowups']} |",
        f"| NaN or Inf in an output | {s['nan_or_inf_outputs']} |",
        f"| errors not naming their input | {s['unnamed_errors']} |",
        f"| contract problems | {len(s['contract_problems'])} |",
        f"| peak worker RSS | {s['peak_rss_mb']:.0f} MiB (limit {info['rss_limit_mb']} MiB), set by case "
        f"{s['peak_rss_case']['id']} ({s['peak_rss_case']['family']}) |",
        f"| seconds per case | p50 {s['seconds_per_case']['p50'] * 1e3:.1f} ms, p99 "
        f"{s['seconds_per_case']['p99'] * 1e3:.0f} ms, max {s['seconds_per_case']['max']:.2f} s |",
        "",
        "## Families",
        "",
        "| family | answered | INVALID_ARGUMENT | other |",
        "|---|---|---|---|",
    ]
    for family, counts in s["families"].items():
        other = {k: v for k, v in counts.items() if k not in ("answered", "invalid_argument")}
        lines.append(f"| {family} | {counts.get('answered', 0)} | {counts.get('invalid_argument', 0)} | "
                     f"{other or ''} |")
    lines += ["", "## Error messages (numbers replaced by N)", "", "| count | message |", "|---|---|"]
    lines += [f"| {n} | `{m}` |" for m, n in s["error_messages"].items()]
    lines += ["", "## Slowest cases", "", "| case | family | seconds | answered | request bytes |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['id']} | {r['family']} | {r['seconds']:.3f} | {r['ok']} | {r['request_bytes']} |"
              for r in s["slowest"]]
    if s["contract_problems"]:
        lines += ["", "## Contract problems", ""] + [f"- {p}" for p in s["contract_problems"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    info = {"command": "python " + " ".join(["benchmarks/fuzz_campaign.py"] + sys.argv[1:]), "machine": machine(),
            "preset": PRESET, "rss_limit_mb": args.rss_limit_mb, "time_limit_s": args.time_limit_s}
    start = time.perf_counter()
    model = fuzz_cases.fuzz_model()
    info["limits"] = model.preprocessor.limits()
    cases = fuzz_cases.make_cases(model, seed=args.seed, mutations=args.mutations, valid=args.valid)
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = mmkeras.export_saved_model(model, Path(tmp) / "fuzz")

        def progress(i, r):
            if i % 100 == 0:
                print(f"case {i}/{len(cases)}: {r['family']} {r['outcome']}", flush=True)

        results, run_info = fuzz_runner.run_cases(export_dir, cases, timeout=args.timeout_s,
                                                  kill_kb=args.kill_mb * 1024, progress=progress)
    info["wall_s"] = time.perf_counter() - start
    info["load_avg_at_end"] = list(os.getloadavg())
    info["summary"] = summarise(results, run_info, args)
    write_json(args.out, info)
    write_text(Path(args.out).with_suffix(".md"), markdown(info))
    s = info["summary"]
    print(f"{s['cases']} cases: {s['answered_ok']} answered, {s['invalid_argument']} INVALID_ARGUMENT; crashes "
          f"{s['crashes']}, hangs {s['hangs']}, memory blow-ups {s['memory_blowups']}, NaN/Inf "
          f"{s['nan_or_inf_outputs']}, unnamed errors {s['unnamed_errors']}, problems {len(s['contract_problems'])}; "
          f"peak RSS {s['peak_rss_mb']:.0f} MiB; written to {args.out}")
    for p in s["contract_problems"][:20]:
        print("  ", p)
    return info


if __name__ == "__main__":
    main()
