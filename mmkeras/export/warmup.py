"""TF Serving warm-up requests: ``assets.extra/tf_serving_warmup_requests``.

TF Serving replays this TFRecord of ``tensorflow.serving.PredictionLog`` protos
when it loads a version, so the first real request does not pay for lazy
function instantiation (about 2 s for the tri-modal presets, against a few ms
per warm request). A record that fails makes the server refuse to load the
version, which is why :func:`check_warmup_examples` runs them before the export
is moved into place.

The protos are written with a small hand encoder (protobuf wire format around
TensorFlow's own ``TensorProto``), so exporting does not need the optional
``tensorflow-serving-api`` package; the tests parse the records back with it.
"""

import numpy as np
import tensorflow as tf

from mmkeras.data import raw as raw_checks
from mmkeras.modalities import modality

WARMUP_FILE = "tf_serving_warmup_requests"
# TF Serving reads at most this many warm-up records.
MAX_WARMUP_RECORDS = 1000


def default_warmup_examples(model):
    """A small valid raw batch: every modality present, then each one absent in turn, then a JPEG.

    Absent modalities and JPEG images take other graph branches (``tf.cond``),
    which also need warming. Images are tiny PNGs (and one JPEG), audio a short
    WAV at the preset's rate.

    Args:
        model: a :class:`~mmkeras.models.MultimodalModel`.

    Returns:
        dict ``{modality: list of bytes}``, as ``model.predict`` takes.

    Example:
    ```python
    examples = default_warmup_examples(model)  # {"image": [png, b"", ...], ...}
    ```
    """
    variants = {m: modality(m).examples(model.preprocessor.config[m]) for m in model.modalities}
    full = {m: values[0] for m, values in variants.items()}
    rows = [full]
    if len(model.modalities) > 1:
        rows += [{k: (b"" if k == m else v) for k, v in full.items()} for m in model.modalities]
    rows += [{**full, m: value} for m, values in variants.items() for value in values[1:]]
    return {m: [row[m] for row in rows] for m in model.modalities}


def normalise_warmup_examples(model, examples):
    """Validates raw warm-up examples: ``{modality: list of bytes}``, all the same length.

    Raises:
        ValueError: naming the input, as ``model.predict`` does for raw inputs.
    """
    arrays = raw_checks.validate_raw(examples, model.modalities, model_name="warmup_examples")
    rows = {m: [v.encode() if isinstance(v, str) else bytes(v) for v in a] for m, a in arrays.items()}
    n = len(next(iter(rows.values())))
    if n + 1 > MAX_WARMUP_RECORDS:
        raise ValueError(f"warmup_examples has {n} examples; TF Serving reads at most "
                         f"{MAX_WARMUP_RECORDS} warm-up records (one per example plus one batch)")
    return rows


def _first_line(message):
    """The mmkeras line of a TF error message (graph errors start with 'in user code:' traces)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return next((line for line in lines if "mmkeras:" in line), lines[0] if lines else message)


def check_warmup_examples(model, rows, serve_fn, features_fn=None, limits=None):
    """Runs the warm-up examples through the serving functions, as TF Serving will at load.

    Args:
        model: the model being exported.
        rows: what :func:`normalise_warmup_examples` returns.
        serve_fn: the ``serving_default`` function (a ``tf.function`` with its
            input signature, so this is the graph that gets exported).
        features_fn: the ``features`` function, or None.
        limits: the export's limits (for the preprocessing of the features record).

    Returns:
        dict or None: the examples' features (numpy), checked through ``features_fn``,
        for :func:`write_warmup_requests`.

    Raises:
        ValueError: naming the example and input that would make TF Serving refuse
            to load the export.
    """
    try:
        serve_fn(*[tf.constant(rows[m]) for m in model.modalities])
    except tf.errors.InvalidArgumentError as err:
        _name_the_failing_example(model, rows, serve_fn, err)
    if features_fn is None:
        return None
    features = model.preprocessor.preprocess_batch({m: tf.constant(rows[m]) for m in model.modalities}, limits=limits)
    features = {k: v.numpy() for k, v in features.items()}
    features_fn(*[tf.constant(features[k]) for k in model.preprocessor.feature_shapes()])
    return features


def _name_the_failing_example(model, rows, serve_fn, batch_error):
    """Raises the ValueError naming the first warm-up example that fails on its own (only on failure)."""
    for i in range(len(rows[model.modalities[0]])):
        try:
            serve_fn(*[tf.constant([rows[m][i]]) for m in model.modalities])
        except tf.errors.InvalidArgumentError as err:
            raise ValueError(f"warmup_examples example {i} fails at serving, so TF Serving would refuse to "
                             f"load the export: {_first_line(err.message)}") from err
    raise ValueError(f"warmup_examples fail at serving: {_first_line(batch_error.message)}")


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number, payload):
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_predict_log(inputs, signature_name="serving_default", model_name=""):
    """Serialises a ``PredictionLog`` holding one ``PredictRequest``.

    Args:
        inputs: dict ``{input name: numpy array or list}``; strings become DT_STRING.
        signature_name: str. The signature the request calls.
        model_name: str. ``model_spec.name`` (TF Serving ignores it during warm-up).

    Returns:
        bytes: the serialised ``tensorflow.serving.PredictionLog``.

    Example:
    ```python
    record = encode_predict_log({"text": np.array([b"a cat"], object)})
    ```
    """
    # ModelSpec: name = 1, signature_name = 3.
    spec = (_field(1, model_name.encode()) if model_name else b"") + _field(3, signature_name.encode())
    request = _field(1, spec)  # PredictRequest.model_spec = 1
    for key in sorted(inputs):
        tensor = tf.make_tensor_proto(inputs[key]).SerializeToString()
        # map<string, TensorProto> inputs = 2: entries with key = 1, value = 2.
        request += _field(2, _field(1, key.encode()) + _field(2, tensor))
    predict_log = _field(1, request)  # PredictLog.request = 1
    return _field(6, predict_log)  # PredictionLog.predict_log = 6


def write_warmup_requests(path, rows, modalities, signature_name="serving_default", features=None):
    """Writes one batch-1 request per example plus one request with the whole batch.

    Args:
        path: str. The TFRecord file to write.
        rows: dict ``{modality: list of bytes}``, all the same length.
        modalities: the signature's input names, in order.
        signature_name: str.
        features: dict or None. The examples' preprocessed tensors, written last as
            a request to the ``features`` signature (its first call is warmed too).

    Returns:
        int: the number of records written.
    """
    n = len(rows[modalities[0]])
    batches = [[i] for i in range(n)] + ([list(range(n))] if n > 1 else [])
    with tf.io.TFRecordWriter(str(path)) as writer:
        for idx in batches:
            inputs = {m: np.array([rows[m][i] for i in idx], dtype=object) for m in modalities}
            writer.write(encode_predict_log(inputs, signature_name))
        if features is not None:
            writer.write(encode_predict_log(features, "features"))
    return len(batches) + (features is not None)
