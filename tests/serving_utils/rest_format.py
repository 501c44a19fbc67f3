"""TF Serving REST JSON <-> tensors, converted as TF Serving's REST API documents it.

Reference: https://www.tensorflow.org/tfx/serving/api_rest ("Request format" /
"Response format" / "Encoding binary values"). This is a format converter for
tests, not a server: the caller runs the tensors through a session.

- Request: exactly one of ``"instances"`` (row format) or ``"inputs"`` (columnar),
  plus optional ``"signature_name"``.
- Row format: a list with one element per example; with several named inputs each
  element is an object holding every input; all inputs share the 0th dimension.
- Columnar: an object ``{input: value}`` (or a bare value for a one-input signature);
  each value is a whole tensor, batch dimension included.
- Binary values are ``{"b64": "<base64>"}``; plain JSON strings are UTF-8 bytes.
- Response: row -> ``{"predictions": [...]}``, a list with one object per example
  (or bare values for a one-output signature); columnar -> ``{"outputs": ...}``,
  an object of whole tensors (or a bare value for one output). Errors are
  ``{"error": "..."}``. String outputs whose name ends in ``_bytes`` are
  b64-encoded; other strings are written as text.

Imports only the standard library and numpy, so the "server" process that uses it
stays free of mmkeras.
"""

import base64

import numpy as np

_NUMPY = {"DT_STRING": object, "DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT32": np.int32,
          "DT_INT64": np.int64, "DT_BOOL": np.bool_}


class RestFormatError(ValueError):
    """A request TF Serving would answer with HTTP 400 and ``{"error": message}``."""


def _decode_leaf(value, dtype):
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise RestFormatError(f"JSON object with keys {sorted(value)} is not a tensor value; binary data "
                                  f"must be {{\"b64\": \"...\"}}")
        if dtype != "DT_STRING":
            raise RestFormatError(f"b64-encoded value given for a {dtype} input")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError as err:
            raise RestFormatError(f"invalid base64 in {{\"b64\": ...}}: {err}") from err
    if isinstance(value, str):
        if dtype != "DT_STRING":
            raise RestFormatError(f"string value given for a {dtype} input")
        return value.encode("utf-8")
    if dtype == "DT_STRING":
        raise RestFormatError(f"{type(value).__name__} value given for a DT_STRING input")
    return value


def _to_array(value, dtype):
    """A JSON value (scalar or rectangular nested lists) -> numpy array of ``dtype``."""

    def walk(v):
        return [walk(x) for x in v] if isinstance(v, list) else _decode_leaf(v, dtype)

    decoded = walk(value)

    def shape_of(v):
        if not isinstance(v, list):
            return ()
        shapes = {shape_of(x) for x in v}
        if len(shapes) > 1:
            raise RestFormatError("tensor values must be rectangular: nested lists of different lengths")
        return (len(v),) + (shapes.pop() if shapes else ())

    shape = shape_of(decoded)
    if dtype == "DT_STRING":
        out = np.empty(shape, dtype=object)
        flat = out.reshape(-1)

        def fill(v, it):
            if isinstance(v, list):
                for x in v:
                    fill(x, it)
            else:
                flat[next(it)] = v

        fill(decoded, iter(range(flat.size)))
        return out
    return np.asarray(decoded, dtype=_NUMPY[dtype]).reshape(shape)


def request_to_tensors(body, signature_inputs):
    """Converts a REST ``:predict`` body to input tensors.

    Args:
        body: dict, the parsed JSON request.
        signature_inputs: dict ``{input name: "DT_STRING" | "DT_FLOAT" | ...}``.

    Returns:
        ``(tensors, format)``: ``{name: numpy array}`` and ``"row"`` or ``"columnar"``.

    Raises:
        RestFormatError: for a malformed request (what TF Serving answers with 400).
    """
    if not isinstance(body, dict):
        raise RestFormatError("request body must be a JSON object")
    if ("instances" in body) == ("inputs" in body):
        raise RestFormatError("JSON object must have exactly one of 'instances' (row format) or 'inputs' "
                              "(columnar format)")
    names = sorted(signature_inputs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise RestFormatError("'instances' must be a non-empty JSON list")
        if len(names) == 1 and not isinstance(rows[0], dict):
            return {names[0]: _to_array(rows, signature_inputs[names[0]])}, "row"
        tensors = {}
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or set(row) != set(names):
                got = sorted(row) if isinstance(row, dict) else type(row).__name__
                raise RestFormatError(f"Failed to process element: {i} of 'instances' list. JSON object must "
                                      f"have the named inputs {names}, got {got}")
        for name in names:
            tensors[name] = _to_array([row[name] for row in rows], signature_inputs[name])
        return tensors, "row"
    columns = body["inputs"]
    if len(names) == 1 and not (isinstance(columns, dict) and set(columns) == set(names)):
        return {names[0]: _to_array(columns, signature_inputs[names[0]])}, "columnar"
    if not isinstance(columns, dict):
        raise RestFormatError(f"'inputs' must be a JSON object with the named inputs {names}")
    unknown = sorted(set(columns) - set(names))
    if unknown:
        raise RestFormatError(f"'inputs' has unknown input(s) {unknown}; the signature takes {names}")
    # Columnar format allows a subset; the signature check downstream rejects missing inputs.
    return {k: _to_array(v, signature_inputs[k]) for k, v in columns.items()}, "columnar"


def _json_leaf(value, name):
    if isinstance(value, (bytes, np.bytes_)):
        if name.endswith("_bytes"):
            return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _to_json(value, name):
    # Never np.asarray a bytes leaf: numpy's fixed-width bytes drop trailing NULs.
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _json_leaf(value[()], name)
        return [_to_json(v, name) for v in value]
    return _json_leaf(value, name)


def tensors_to_response(outputs, format):
    """Output tensors -> the REST response TF Serving sends.

    Args:
        outputs: dict ``{output name: numpy array}``.
        format: ``"row"`` or ``"columnar"`` (the request's format).

    Returns:
        dict: ``{"predictions": [...]}`` or ``{"outputs": ...}``.

    Raises:
        RestFormatError: row format with outputs of different batch sizes.
    """
    names = sorted(outputs)
    if format == "columnar":
        if len(names) == 1:
            return {"outputs": _to_json(outputs[names[0]], names[0])}
        return {"outputs": {k: _to_json(outputs[k], k) for k in names}}
    sizes = {np.asarray(outputs[k]).shape[0] if np.ndim(outputs[k]) else None for k in names}
    if len(sizes) != 1 or None in sizes:
        raise RestFormatError("row format needs every output to have the same 0th (batch) dimension; "
                              "use the columnar 'inputs' format")
    n = sizes.pop()
    if len(names) == 1:
        return {"predictions": [_to_json(outputs[names[0]][i], names[0]) for i in range(n)]}
    return {"predictions": [{k: _to_json(outputs[k][i], k) for k in names} for i in range(n)]}


def error_response(message):
    """The body of a TF Serving REST error."""
    return {"error": message}
