"""Answers fuzz cases with an exported SavedModel the way the C++ TF Serving server does.

Usage: ``python fuzz_worker.py EXPORT_DIR``, then one case file path per line on
stdin; one JSON line per case on stdout.

Imports TensorFlow and numpy only, never mmkeras. Loads the export with the TF1
loader and runs each case through the signature's tensor names with the session's
C API call, which (like the C++ server, unlike ``Session.run``) does not check a
fed tensor against the placeholder's shape: a scalar or a matrix fed into a
``[None]`` input reaches the graph. A case file is a pickle of
``{"signature": str, "inputs": {name: numpy array}}``.

Each answer: ``{"ok": bool, "seconds", "maxrss_kb"}`` plus, when ok, whether every
float output is finite and the output shapes, else the error's class and message.
``maxrss_kb`` is the process's peak resident memory so far (monotonic), so a
case that raises it is the one that used the most.
"""

import json
import pickle
import resource
import sys
import time

import numpy as np
import tensorflow as tf


def main(export_dir):
    start = time.perf_counter()
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
    signatures = dict(meta.signature_def)
    ready = {"ready": True, "load_s": time.perf_counter() - start, "signatures": sorted(signatures),
             "mmkeras_imported": any(m == "mmkeras" or m.startswith("mmkeras.") for m in sys.modules),
             "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        with open(line.strip(), "rb") as f:
            case = pickle.load(f)
        sig = signatures[case["signature"]]
        feeds = {graph.get_tensor_by_name(sig.inputs[k].name)._as_tf_output(): v for k, v in case["inputs"].items()}
        names = sorted(sig.outputs)
        fetches = [graph.get_tensor_by_name(sig.outputs[k].name)._as_tf_output() for k in names]
        begin = time.perf_counter()
        try:
            outputs = dict(zip(names, sess._call_tf_sessionrun(None, feeds, fetches, [], None)))
            answer = {"ok": True,
                      "finite": all(bool(np.isfinite(v).all()) for v in outputs.values() if v.dtype.kind == "f"),
                      "shapes": {k: list(v.shape) for k, v in outputs.items()}}
        except tf.errors.OpError as err:
            answer = {"ok": False, "status": type(err).__name__, "message": err.message[:4000]}
        answer["seconds"] = time.perf_counter() - begin
        answer["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
