"""The TF-only process of the load test: one loaded export, several client threads.

Usage: ``python benchmarks/_load_server.py EXPORT_DIR POOL.pkl RESULT.json --threads 8 --seconds 60``

Imports TensorFlow and numpy only (plus the fuzz worker's session helpers), never
mmkeras. Loads the export with the TF1 loader, replays its warm-up records (as TF
Serving does) and every request of the pool once, untimed, then runs ``--threads``
client threads for ``--seconds``: each picks a kind of request by its share, then
a request of that kind at random, and runs it through the signature's tensor names
on the one shared session, as concurrent gRPC calls reach one TF Serving model.
Every answer is checked as it arrives: valid requests against the scores
``model.predict`` gave in the parent process, hostile ones for an INVALID_ARGUMENT
that names its input.
"""

import argparse
import contextlib
import json
import pickle
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "serving_utils"))
from fuzz_runner import mmkeras_message, names_the_input, rss_kb  # noqa: E402
from fuzz_worker import _run, _warm_up, peak_rss_kb  # noqa: E402


def client(sess, graph, signatures, pool, deadline, seed, tolerance, out):
    rng = random.Random(seed)
    kinds = list(pool["shares"])
    weights = [pool["shares"][k] for k in kinds]
    while time.perf_counter() < deadline:
        kind = rng.choices(kinds, weights)[0]
        i = rng.randrange(len(pool[kind]))
        request = pool[kind][i]
        start = time.perf_counter()
        try:
            outputs = _run(sess, graph, signatures[request["signature"]], request["inputs"])
            answer = {"ok": True}
        except tf.errors.OpError as err:
            answer = {"ok": False, "status": type(err).__name__, "message": err.message}
        seconds = time.perf_counter() - start
        record = {"i": i, "kind": request["kind"], "seconds": seconds, "ok": answer["ok"],
                  "examples": request["examples"]}
        if request["kind"] == "hostile":
            record["correct"] = not answer["ok"] and names_the_input(answer)
            if not record["correct"]:
                record["detail"] = mmkeras_message(answer.get("message", "answered"))[:300]
        elif answer["ok"]:
            diff = float(np.abs(outputs["scores"] - request["expected"]).max())
            record["max_abs_diff"] = diff
            record["correct"] = diff <= tolerance and bool(np.isfinite(outputs["scores"]).all())
        else:
            record["correct"] = False
            record["detail"] = mmkeras_message(answer["message"])[:300]
        out.append(record)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("export_dir")
    p.add_argument("pool")
    p.add_argument("result")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--tolerance", type=float, default=1e-5)
    args = p.parse_args(argv)
    with open(args.pool, "rb") as f:
        pool = pickle.load(f)
    start = time.perf_counter()
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], args.export_dir)
    signatures = dict(meta.signature_def)
    warmed = _warm_up(sess, graph, signatures, Path(args.export_dir) / "assets.extra" / "tf_serving_warmup_requests")
    load_s = time.perf_counter() - start
    # Every distinct request once, untimed: first use of a code path (a JPEG, a failure
    # message) instantiates its functions, a one-off cost the steady state does not pay.
    start = time.perf_counter()
    for kind in pool["shares"]:
        for request in pool[kind]:
            with contextlib.suppress(tf.errors.OpError):
                _run(sess, graph, signatures[request["signature"]], request["inputs"])
    first_pass_s = time.perf_counter() - start
    rss_after_load = rss_kb("self")
    records, threads = [], []
    deadline = time.perf_counter() + args.seconds
    sampled = [rss_after_load]
    cpu = time.process_time()
    wall = time.perf_counter()
    for t in range(args.threads):
        threads.append(threading.Thread(target=client, args=(sess, graph, signatures, pool, deadline, t,
                                                              args.tolerance, records)))
        threads[-1].start()
    while any(t.is_alive() for t in threads):
        sampled.append(rss_kb("self"))
        time.sleep(0.05)
    for t in threads:
        t.join()
    result = {"load_s": load_s, "warmup_records": warmed, "first_pass_s": first_pass_s, "threads": args.threads,
              "seconds": args.seconds,
              "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
              "rss_after_load_kb": rss_after_load, "peak_rss_sampled_kb": max(sampled),
              "maxrss_kb": peak_rss_kb(),
              "mmkeras_imported": any(m == "mmkeras" or m.startswith("mmkeras.") for m in sys.modules),
              "records": records}
    Path(args.result).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
