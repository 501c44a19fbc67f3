"""Load test of the exported model: 8 client threads, 60 s, valid, absent-modality and hostile requests.

Exports ``image_audio_text_small`` (10 classes) and builds a pool of requests:
valid ones from real MNIST digits (PNG and JPEG) and FSDD recordings (one example,
or batches of 8), the same with one or two modalities absent, and hostile ones
from the fuzz families (corrupt and truncated files, headers declaring huge sizes,
WAV chunk floods and out-of-range sample rates, wrong shapes, empty and oversized
batches, out-of-range ``features`` tensors). The expected scores of every valid
request come from ``model.predict`` in this process.

One TF-only process (``benchmarks/_load_server.py``) loads the export and runs 8
client threads on one shared session for 60 s, checking each answer as it comes:
valid scores equal to ``model.predict`` (1e-5), hostile requests failing with
INVALID_ARGUMENT naming their input. Reported: requests and examples per second,
p50/p99 latency per kind, peak RSS, and every incorrect answer. Results go to
``benchmarks/results/load_test.{json,md}``.

Usage: python benchmarks/load_test.py [--threads 8] [--seconds 60] [--hostile_share 0.2]
"""

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402
from serving_utils import fuzz_cases  # noqa: E402

import mmkeras  # noqa: E402
from benchmarks.common import machine, write_json, write_text  # noqa: E402

PRESET = fuzz_cases.PRESET
SERVER = REPO / "benchmarks" / "_load_server.py"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--valid", type=int, default=48, help="valid requests in the pool (each also with absences)")
    p.add_argument("--hostile_share", type=float, default=0.2, help="share of hostile requests in the pool")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "load_test.json"))
    return p.parse_args(argv)


def request_pool(model, args):
    """Valid, absent-modality and hostile requests, each with its expected outcome."""
    maker = fuzz_cases.CaseMaker(model, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    pool = []

    def add(kind, inputs):
        raw = {m: list(v) for m, v in inputs.items()}
        expected = model.predict(raw, verbose=0)
        pool.append({"kind": kind, "signature": "serving_default", "inputs": inputs, "expected": expected,
                     "examples": len(raw["image"])})

    for i in range(args.valid):
        n = 8 if i % 4 == 3 else 1
        batch = {"image": [maker.image() if rng.random() < 0.5 else maker.pick("png") for _ in range(n)],
                 "audio": [maker.pick("wav") for _ in range(n)], "text": [maker.caption() for _ in range(n)]}
        add("valid", {m: np.array(v, dtype=object) for m, v in batch.items()})
        absent = [m for m in ("image", "audio", "text") if rng.random() < 0.5] or ["audio"]
        if len(absent) == 3:
            absent = absent[:2]
        add("absent_modality", {m: np.array([b""] * n if m in absent else v, dtype=object) for m, v in batch.items()})
    maker.crafted_images()
    maker.crafted_audio()
    maker.batch_abuse()
    maker.feature_abuse()
    maker.mutations(60)
    for case in maker.cases:
        if case["expect"] == "error":
            pool.append({"kind": "hostile", "signature": case["signature"], "inputs": case["inputs"],
                         "family": case["family"], "examples": 0})
    by_kind = {k: [p for p in pool if p["kind"] == k] for k in ("valid", "absent_modality", "hostile")}
    # Clients pick a kind by these shares, then a request of that kind.
    valid_share = (1 - args.hostile_share) / 2
    by_kind["shares"] = {"valid": valid_share, "absent_modality": valid_share, "hostile": args.hostile_share}
    return by_kind


def summarise(result, pool):
    records = result["records"]
    out = {"requests": len(records), "requests_per_s": len(records) / result["wall_s"],
           "examples_answered_per_s": sum(r["examples"] for r in records if r["ok"]) / result["wall_s"],
           "cpu_s": result["cpu_s"], "peak_rss_mb": result["maxrss_kb"] / 1024,
           "rss_after_load_mb": result["rss_after_load_kb"] / 1024, "kinds": {}}
    for kind in ("valid", "absent_modality", "hostile"):
        rs = [r for r in records if r["kind"] == kind]
        if not rs:
            continue
        seconds = np.array([r["seconds"] for r in rs])
        out["kinds"][kind] = {
            "requests": len(rs), "correct": sum(r["correct"] for r in rs),
            "incorrect": sum(not r["correct"] for r in rs),
            "p50_ms": float(np.median(seconds) * 1e3), "p99_ms": float(np.percentile(seconds, 99) * 1e3),
            "max_ms": float(seconds.max() * 1e3),
            "max_abs_diff": max((r.get("max_abs_diff", 0.0) for r in rs), default=0.0)}
    seconds = np.array([r["seconds"] for r in records])
    out["p50_ms"], out["p99_ms"] = float(np.median(seconds) * 1e3), float(np.percentile(seconds, 99) * 1e3)
    out["incorrect_examples"] = [{**r, "family": pool[r["kind"]][r["i"]].get("family")}
                                 for r in records if not r["correct"]][:20]
    return out


def markdown(info):
    s = info["summary"]
    lines = [
        "# Load test of the exported model",
        "",
        f"`{info['command']}` on {info['machine']['cpu']} ({info['machine']['cores']} cores), load average "
        f"{info['machine']['load_avg_at_start'][0]:.1f} at start and {info['load_avg_at_end'][0]:.1f} at end "
        "(other processes shared the machine when this is above ~1). One TF-only process, "
        f"{info['threads']} client threads on one session for {info['seconds']:.0f} s; the pool held "
        f"{info['pool']['valid']} valid, {info['pool']['absent_modality']} absent-modality and "
        f"{info['pool']['hostile']} hostile requests ({info['pool']['hostile_families']} families); each client "
        f"drew a hostile request {info['pool']['shares']['hostile']:.0%} of the time, else a valid or an "
        "absent-modality one (even odds).",
        "",
        f"- throughput: {s['requests_per_s']:.1f} requests/s, {s['examples_answered_per_s']:.1f} answered examples/s",
        f"- latency over all requests: p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms",
        f"- peak RSS: {s['peak_rss_mb']:.0f} MiB ({s['rss_after_load_mb']:.0f} MiB after loading, the warm-up "
        f"records and one untimed pass over the pool ({info['server']['first_pass_s']:.0f} s), which pays each code "
        "path's first-use cost)",
        "",
        "| kind | requests | correct | incorrect | p50 ms | p99 ms | max ms | max abs diff vs model.predict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, k in s["kinds"].items():
        lines.append(f"| {kind} | {k['requests']} | {k['correct']} | {k['incorrect']} | {k['p50_ms']:.1f} | "
                     f"{k['p99_ms']:.1f} | {k['max_ms']:.0f} | {k['max_abs_diff']:.2e} |")
    lines += ["", "Correct means: valid and absent-modality requests answered with scores equal to "
              "`model.predict` within 1e-5; hostile requests refused with INVALID_ARGUMENT whose message starts "
              "with `mmkeras: input '`."]
    if s["incorrect_examples"]:
        lines += ["", "## Incorrect answers", ""] + [f"- {json.dumps(r)}" for r in s["incorrect_examples"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    info = {"command": "python " + " ".join(["benchmarks/load_test.py"] + sys.argv[1:]), "machine": machine(),
            "preset": PRESET, "threads": args.threads, "seconds": args.seconds}
    model = fuzz_cases.fuzz_model()
    pool = request_pool(model, args)
    info["pool"] = {k: len(pool[k]) for k in ("valid", "absent_modality", "hostile")}
    info["pool"]["hostile_families"] = len({p["family"] for p in pool["hostile"]})
    info["pool"]["shares"] = pool["shares"]
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = mmkeras.export_saved_model(model, Path(tmp) / "load")
        with open(Path(tmp) / "pool.pkl", "wb") as f:
            pickle.dump(pool, f)
        result_file = Path(tmp) / "result.json"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(SERVER), export_dir, str(Path(tmp) / "pool.pkl"), str(result_file),
                               "--threads", str(args.threads), "--seconds", str(args.seconds)],
                              capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        info["server_wall_s"] = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"load server failed:\n{proc.stderr[-4000:]}")
        result = json.loads(result_file.read_text())
    info["load_avg_at_end"] = list(os.getloadavg())
    info["server"] = {k: v for k, v in result.items() if k != "records"}
    info["summary"] = summarise(result, pool)
    write_json(args.out, info)
    write_text(Path(args.out).with_suffix(".md"), markdown(info))
    s = info["summary"]
    print(f"{s['requests']} requests in {result['wall_s']:.0f} s: {s['requests_per_s']:.1f} requests/s, "
          f"{s['examples_answered_per_s']:.1f} answered examples/s, p50 {s['p50_ms']:.1f} ms, "
          f"p99 {s['p99_ms']:.1f} ms, peak RSS {s['peak_rss_mb']:.0f} MiB")
    for kind, k in s["kinds"].items():
        print(f"  {kind}: {k['requests']} requests, {k['incorrect']} incorrect, p50 {k['p50_ms']:.1f} ms, "
              f"p99 {k['p99_ms']:.1f} ms, max |diff| {k['max_abs_diff']:.1e}")
    return info


if __name__ == "__main__":
    main()
