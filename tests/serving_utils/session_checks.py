"""Runs an export the way the C++ TF Serving server does, in a fresh process.

Usage: ``python session_checks.py JOB.json RESULT.json``.

Imports only TensorFlow, tensorflow-serving-api protos, numpy and the sibling
``rest_format`` converter, never mmkeras: what works here works without the
Python code that exported the model. Steps:

1. Op audit of ``saved_model.pb`` (graph + function library) against the op
   registry of a bare TensorFlow process; unregistered ops are retried after
   importing tensorflow_text and listed separately.
2. ``tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)``.
3. Each request: a serialised ``PredictRequest`` file (gRPC wire bytes), a REST
   JSON body, or the export's warm-up records. Inputs are checked against the
   signature as TF Serving's predict handler does, fed by the signature's tensor
   names, and answered as a serialised ``PredictResponse`` / REST JSON, or with
   the error code and message the server would return.
"""

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rest_format  # noqa: E402


def audit_ops(export_dir):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    ops = set()
    for meta in proto.meta_graphs:
        ops.update(n.op for n in meta.graph_def.node)
        for fn in meta.graph_def.library.function:
            ops.update(n.op for n in fn.node_def)
        functions = {fn.signature.name for fn in meta.graph_def.library.function}
    ops -= functions  # calls of library functions appear as ops named after the function
    core = sorted(op for op in ops if op_def_registry.get(op) is not None)
    missing = sorted(ops - set(core))
    text_ops, unknown = [], missing
    if missing:
        import tensorflow_text  # noqa: F401  (registers its ops, as TF Serving links them in)

        text_ops = sorted(op for op in missing if op_def_registry.get(op) is not None)
        unknown = sorted(set(missing) - set(text_ops))
    return {"core_ops": core, "tensorflow_text_ops": text_ops, "unregistered_ops": unknown,
            "num_functions": len(functions)}


class Server:
    """A loaded SavedModel answering requests through signature tensor names."""

    def __init__(self, export_dir, model_name, version):
        self.graph = tf.Graph()
        self.sess = tf.compat.v1.Session(graph=self.graph)
        start = time.perf_counter()
        meta = tf.compat.v1.saved_model.loader.load(self.sess, ["serve"], export_dir)
        self.load_s = time.perf_counter() - start
        self.signatures = dict(meta.signature_def)
        self.model_name, self.version = model_name, version

    def check_inputs(self, signature_name, tensors):
        """TF Serving's predict handler: the request's input keys must match the signature exactly."""
        if signature_name not in self.signatures:
            raise tf.errors.FailedPreconditionError(
                None, None, f"Serving signature name: \"{signature_name}\" not found in signature def")
        expected = set(self.signatures[signature_name].inputs)
        sent = set(tensors)
        if sent != expected:
            raise tf.errors.InvalidArgumentError(
                None, None, f"input size does not match signature: {len(sent)}!={len(expected)} "
                            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                            f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")
        for key, value in tensors.items():
            want = tf.dtypes.as_dtype(self.signatures[signature_name].inputs[key].dtype)
            got = tf.string if value.dtype == object else tf.dtypes.as_dtype(value.dtype)
            if got != want:
                raise tf.errors.InvalidArgumentError(
                    None, None, f"Expects arg[{key}] to be {want.name} but {got.name} is provided")

    def run(self, signature_name, tensors):
        self.check_inputs(signature_name, tensors)
        sig = self.signatures[signature_name]
        feeds = {sig.inputs[k].name: v for k, v in tensors.items()}
        fetches = {k: v.name for k, v in sig.outputs.items()}
        return self.sess.run(fetches, feeds)


def handle_grpc(server, request_bytes, out_path):
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.ParseFromString(request_bytes)
    tensors = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    signature = request.model_spec.signature_name or "serving_default"
    start = time.perf_counter()
    outputs = server.run(signature, tensors)
    elapsed = time.perf_counter() - start
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name or server.model_name
    response.model_spec.version.value = server.version
    response.model_spec.signature_name = signature
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    Path(out_path).write_bytes(response.SerializeToString())
    return {"response_file": str(out_path), "run_s": elapsed}


def handle_rest(server, body):
    try:
        signature = body.get("signature_name", "serving_default") if isinstance(body, dict) else "serving_default"
        names = {k: _DT_NAMES[v.dtype] for k, v in server.signatures[signature].inputs.items()}
        tensors, fmt = rest_format.request_to_tensors(body, names)
    except (rest_format.RestFormatError, KeyError) as err:
        return {"http_status": 400, "body": rest_format.error_response(str(err))}
    try:
        outputs = server.run(signature, tensors)
    except tf.errors.OpError as err:
        return {"http_status": 400, "body": rest_format.error_response(err.message), "status": type(err).__name__}
    return {"http_status": 200, "body": rest_format.tensors_to_response(outputs, fmt)}


_DT_NAMES = {tf.string.as_datatype_enum: "DT_STRING", tf.float32.as_datatype_enum: "DT_FLOAT",
             tf.int32.as_datatype_enum: "DT_INT32", tf.int64.as_datatype_enum: "DT_INT64",
             tf.float64.as_datatype_enum: "DT_DOUBLE", tf.bool.as_datatype_enum: "DT_BOOL"}


def handle_warmup(server, export_dir):
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    results = []
    for record in tf.compat.v1.io.tf_record_iterator(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        request = log.predict_log.request
        tensors = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = server.run(request.model_spec.signature_name or "serving_default", tensors)
        results.append({"batch": int(next(iter(tensors.values())).shape[0]),
                        "finite": bool(np.isfinite(outputs["scores"]).all())})
    return results


def main(job_path, result_path):
    job = json.loads(Path(job_path).read_text())
    export_dir = job["export_dir"]
    result = {"audit": audit_ops(export_dir)}
    server = Server(export_dir, job.get("model_name", "model"), int(Path(export_dir).name))
    result["load_s"] = server.load_s
    result["signatures"] = sorted(server.signatures)
    result["warmup"] = handle_warmup(server, export_dir)
    answers = {}
    for req in job["requests"]:
        try:
            if req["kind"] == "grpc":
                answers[req["id"]] = {"ok": True, **handle_grpc(server, Path(req["file"]).read_bytes(),
                                                                 Path(req["file"]).with_suffix(".response"))}
            else:
                answers[req["id"]] = {"ok": True, **handle_rest(server, req["body"])}
        except tf.errors.OpError as err:
            answers[req["id"]] = {"ok": False, "status": type(err).__name__, "message": err.message}
        except Exception:  # the server would answer INTERNAL; the check reports it
            answers[req["id"]] = {"ok": False, "status": "INTERNAL", "message": traceback.format_exc()}
    result["answers"] = answers
    result["mmkeras_imported"] = any(name == "mmkeras" or name.startswith("mmkeras.") for name in sys.modules)
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
