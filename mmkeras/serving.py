"""Client helpers for a model served by TF Serving: gRPC requests and REST bodies.

An exported mmkeras model takes one DT_STRING ``[batch]`` input per modality
(image file bytes, WAV file bytes, UTF-8 text; ``b""`` = absent). These helpers
build the request from raw values, fill absent modalities, and read responses
back into numpy. ``make_predict_request`` needs ``tensorflow-serving-api``
(``pip install mmkeras[serving]``); the REST helpers need only the standard library
and numpy (and mmkeras's modality registry where ``modalities`` is left out).
"""

import base64
import json
import os
from pathlib import Path

import numpy as np

_METADATA = Path("assets.extra") / "mmkeras.json"  # written by mmkeras.export (export/metadata.py)


def model_modalities(source=None):
    """The inputs a served model takes, from whatever the client has at hand.

    Args:
        source: None (the library's own modalities: ``["image", "audio", "text"]``, the
            tri-modal presets), a list of registered names, an export directory (a version
            directory or its base directory, newest version; read from its
            ``assets.extra/mmkeras.json``), the dict :func:`mmkeras.inspect_export`
            returns, or a model (its ``modalities``).

    Returns:
        list of str.

    Example:
    ```python
    model_modalities("saved_models/demo")  # ["image", "audio"]
    ```
    """
    if source is None:
        return _registered(library_only=True)
    if isinstance(source, dict):
        if "modalities" not in source:
            raise ValueError(f"modalities: a dict must be what inspect_export returns (with 'modalities'), "
                             f"got keys {sorted(source)}")
        return list(source["modalities"])
    if isinstance(source, (str, os.PathLike)):
        return _export_modalities(Path(source))
    if hasattr(source, "modalities") and not isinstance(source, (list, tuple)):
        return list(source.modalities)
    names = list(source)
    known = _registered()
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ValueError(f"modalities: unknown name(s) {unknown}; expected a subset of {known}")
    return names


def _registered(library_only=False):
    """Registered modality names in input order (``library_only``: mmkeras's own); imports the registry."""
    from mmkeras.modalities import MODALITIES, modality_order

    return [m for m in modality_order()
            if not library_only or MODALITIES.get(m).__module__.startswith("mmkeras.modalities.")]


def _export_modalities(path):
    if not path.is_dir():
        raise ValueError(f"modalities: export directory {str(path)!r} does not exist")
    if not (path / _METADATA).exists():
        versions = sorted((p for p in path.iterdir() if p.name.isdigit() and (p / _METADATA).exists()),
                          key=lambda p: int(p.name))
        if not versions:
            raise ValueError(f"modalities: {str(path)!r} is not an mmkeras export (no {_METADATA} in it or in a "
                             f"numbered version directory)")
        path = versions[-1]
    return list(json.loads((path / _METADATA).read_text())["modalities"])


def _as_value(value, key):
    """One example's value: str (text, sent as UTF-8) or bytes."""
    if value is None:
        return b""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview, np.bytes_)):
        return bytes(value)
    raise TypeError(f"input {key!r}: expected bytes or str per example (b'' when absent), "
                    f"got {type(value).__name__}")


def _as_bytes(value):
    return value.encode("utf-8") if isinstance(value, str) else value


def _columns(inputs, modalities):
    """``{key: list of bytes or str}`` with one entry per example; a single value is a batch of one."""
    if not isinstance(inputs, dict) or not inputs:
        raise TypeError("inputs must be a non-empty dict like {'image': png_bytes, 'text': 'a caption'}")
    keys = model_modalities(modalities)
    unknown = [k for k in inputs if k not in keys]
    if unknown:
        raise ValueError(f"unexpected input key(s) {unknown}; the model takes {keys}"
                         + ("" if modalities is not None else " (the default: pass modalities= for a model with "
                                                               "fewer inputs)"))
    columns = {}
    for key in keys:
        value = inputs.get(key)
        if value is None or isinstance(value, (str, bytes, bytearray, memoryview, np.bytes_)):
            columns[key] = None if value is None else [_as_value(value, key)]
        else:
            columns[key] = [_as_value(v, key) for v in value]
    sizes = {len(v) for v in columns.values() if v is not None}
    if len(sizes) > 1:
        raise ValueError(f"inputs have different numbers of examples: "
                         f"{ {k: len(v) for k, v in columns.items() if v is not None} }")
    n = sizes.pop() if sizes else 1
    # Absent modality: every example gets b"" (TF Serving rejects a request missing a signature input).
    return {k: (v if v is not None else [b""] * n) for k, v in columns.items()}


def make_predict_request(inputs, model_name, signature_name="serving_default", version=None,
                         version_label=None, modalities=None):
    """Builds a gRPC ``PredictRequest`` from raw values.

    Args:
        inputs: dict ``{modality: value or list of values}``; a value is bytes
            (image/WAV file contents, or UTF-8 text) or str (text); a single value
            makes a batch of one. ``None`` or a missing key (with ``modalities``)
            means absent.
        model_name: str. The served model's name (``--model_name`` or models.config).
        signature_name: str. Defaults to ``serving_default``.
        version: int or None. A specific version (default: the server's newest).
        version_label: str or None. A version label instead of a number.
        modalities: the model's inputs: None (all of image, audio, text), a
            list, an export directory, an ``inspect_export`` dict or a model (see
            :func:`model_modalities`). Inputs missing from ``inputs`` are sent as
            b"" (absent), since TF Serving rejects a request without them.

    Returns:
        ``tensorflow_serving.apis.predict_pb2.PredictRequest``.

    Example:
    ```python
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    request = mmkeras.serving.make_predict_request(
        {"image": open("cat.png", "rb").read(), "text": "a cat"}, "demo", modalities="saved_models/demo")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel("localhost:8500"))
    scores = mmkeras.serving.parse_predict_response(stub.Predict(request, timeout=10.0))["scores"]
    ```
    """
    try:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("make_predict_request needs tensorflow-serving-api: pip install 'mmkeras[serving]'") from err
    if version is not None and version_label is not None:
        raise ValueError("pass version or version_label, not both")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    if version_label is not None:
        request.model_spec.version_label = version_label
    for key, values in _columns(inputs, modalities).items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(np.array([_as_bytes(v) for v in values], dtype=object),
                                                          dtype=tf.string))
    return request


def _json_value(value):
    """TF Serving REST: text given as str goes as a plain JSON string; bytes go as {"b64": ...}.

    (TF Serving reads both into the same DT_STRING bytes: a plain string as its UTF-8.)
    """
    if isinstance(value, str):
        return value
    return {"b64": base64.b64encode(value).decode("ascii")}


def make_rest_body(inputs, signature_name="serving_default", format="instances", modalities=None):
    """Builds the JSON body for TF Serving's REST ``:predict`` endpoint.

    Args:
        inputs: dict, as for :func:`make_predict_request`.
        signature_name: str.
        format: ``"instances"`` (row format: one object per example) or
            ``"inputs"`` (columnar: one list per input).
        modalities: the model's inputs, as for :func:`make_predict_request`
            (default: image, audio and text). Inputs missing from ``inputs`` are
            sent as b"" (absent).

    Returns:
        dict, ready for ``json.dumps`` (bytes as ``{"b64": ...}``, str values as JSON strings).

    Example:
    ```python
    body = mmkeras.serving.make_rest_body({"image": png, "text": "a cat"})  # audio sent as b"" (absent)
    body = mmkeras.serving.make_rest_body({"image": png}, modalities="saved_models/demo")  # that export's inputs
    requests.post("http://localhost:8501/v1/models/demo:predict", json=body).json()["predictions"][0]["scores"]
    ```
    """
    columns = _columns(inputs, modalities)
    encoded = {k: [_json_value(v) for v in vals] for k, vals in columns.items()}
    body = {"signature_name": signature_name}
    if format == "instances":
        n = len(next(iter(encoded.values())))
        body["instances"] = [{k: vals[i] for k, vals in encoded.items()} for i in range(n)]
    elif format == "inputs":
        body["inputs"] = encoded
    else:
        raise ValueError(f"format must be 'instances' (row) or 'inputs' (columnar), got {format!r}")
    return body


def parse_predict_response(response):
    """``PredictResponse`` -> ``{output name: numpy array}`` (classes as str).

    Example:
    ```python
    out = parse_predict_response(stub.Predict(request))  # {"scores": [B, C] float32, "classes": [B] str, ...}
    ```
    """
    import tensorflow as tf

    out = {}
    for key, proto in response.outputs.items():
        value = tf.make_ndarray(proto)
        if value.dtype == object:
            value = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value)
        out[key] = value
    return out


def parse_rest_response(body):
    """REST ``:predict`` JSON (str or dict) -> ``{output name: numpy array}``.

    Accepts both answers TF Serving gives: ``{"predictions": [...]}`` (row format)
    and ``{"outputs": ...}`` (columnar). Raises RuntimeError on ``{"error": ...}``.

    Example:
    ```python
    out = parse_rest_response(requests.post(url, json=body).text)  # {"scores": array([[...]]), ...}
    ```
    """
    body = json.loads(body) if isinstance(body, (str, bytes)) else body
    if "error" in body:
        raise RuntimeError(f"TF Serving error: {body['error']}")
    if "predictions" in body:
        rows = body["predictions"]
        if rows and isinstance(rows[0], dict):
            return {k: np.array([r[k] for r in rows]) for k in rows[0]}
        return {"predictions": np.array(rows)}
    if "outputs" in body:
        outputs = body["outputs"]
        return {k: np.array(v) for k, v in outputs.items()} if isinstance(outputs, dict) else {
            "outputs": np.array(outputs)}
    raise ValueError(f"not a TF Serving predict response: keys {sorted(body)}")


def rest_url(host, model_name, version=None, port=8501):
    """``http://host:port/v1/models/<name>[/versions/<v>]:predict``.

    Example:
    ```python
    rest_url("localhost", "demo")  # "http://localhost:8501/v1/models/demo:predict"
    ```
    """
    path = f"/v1/models/{model_name}" + (f"/versions/{int(version)}" if version is not None else "")
    return f"http://{host}:{port}{path}:predict"
