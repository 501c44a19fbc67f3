"""Answers fuzz cases with an exported SavedModel the way the C++ TF Serving server does.

Usage: ``python fuzz_worker.py EXPORT_DIR``, then one case file path per line on
stdin; one JSON line per case on stdout.

Imports TensorFlow and numpy only, never mmkeras. Loads the export with the TF1
loader and runs each case through the signature's tensor names with the session's
C API call, which (like the C++ server, unlike ``Session.run``) does not check a
fed tensor against the placeholder's shape: a scalar or a matrix fed into a
``[None]`` input reaches the graph. A case file is a pickle of
``{"signature": str, "inputs": {name: numpy array}}``.

Before the first case the export's warm-up records are replayed, as TF Serving
does when it loads a version. Each answer: ``{"ok": bool, "seconds", "maxrss_kb"}`` plus, when ok, whether every
float output is finite and the output shapes, else the error's class and message.
``maxrss_kb`` is the process's peak resident memory so far (``VmHWM``, monotonic),
so a case that raises it is the one that used the most. (Not ``getrusage``: its
``ru_maxrss`` starts at the parent's resident size when the parent forked.)
"""

import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf


def peak_rss_kb():
    """This process's peak resident memory in KiB (``VmHWM`` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _run(sess, graph, signature, inputs):
    feeds = {graph.get_tensor_by_name(signature.inputs[k].name)._as_tf_output(): v for k, v in inputs.items()}
    names = sorted(signature.outputs)
    fetches = [graph.get_tensor_by_name(signature.outputs[k].name)._as_tf_output() for k in names]
    return dict(zip(names, sess._call_tf_sessionrun(None, feeds, fetches, [], None)))


def _warm_up(sess, graph, signatures, path):
    """Replays TF Serving warm-up records (PredictionLog TFRecords); returns how many ran."""
    if not path.exists():
        return 0
    from tensorflow_serving.apis import prediction_log_pb2

    count = 0
    for record in tf.compat.v1.io.tf_record_iterator(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        _run(sess, graph, signatures[request.model_spec.signature_name or "serving_default"], inputs)
        count += 1
    return count


def main(export_dir):
    start = time.perf_counter()
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
    signatures = dict(meta.signature_def)
    warmed = _warm_up(sess, graph, signatures, Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests")
    ready = {"ready": True, "load_s": time.perf_counter() - start, "signatures": sorted(signatures),
             "warmup_records": warmed,
             "mmkeras_imported": any(m == "mmkeras" or m.startswith("mmkeras.") for m in sys.modules),
             "maxrss_kb": peak_rss_kb()}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        with open(line.strip(), "rb") as f:
            case = pickle.load(f)
        begin = time.perf_counter()
        try:
            outputs = _run(sess, graph, signatures[case["signature"]], case["inputs"])
            answer = {"ok": True,
                      "finite": all(bool(np.isfinite(v).all()) for v in outputs.values() if v.dtype.kind == "f"),
                      "shapes": {k: list(v.shape) for k, v in outputs.items()}}
        except tf.errors.OpError as err:
            answer = {"ok": False, "status": type(err).__name__, "message": err.message[:4000]}
        answer["seconds"] = time.perf_counter() - begin
        answer["maxrss_kb"] = peak_rss_kb()
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
