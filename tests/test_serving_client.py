"""Client helpers (mmkeras.serving) and the REST-format test converter; no model needed."""

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from mmkeras import serving

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_utils import rest_format  # noqa: E402
from serving_utils.saved_model_cli_output import parse_show_all  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n fake png"
WAV = b"RIFF\x00\x00\x00\x00WAVE fake"
SIGNATURE = {"image": "DT_STRING", "audio": "DT_STRING", "text": "DT_STRING"}


def test_make_predict_request_round_trips_the_wire_format():
    request = serving.make_predict_request({"image": PNG, "text": "a cat"}, "demo", version=3,
                                           modalities=["image", "audio", "text"])
    parsed = predict_pb2.PredictRequest()
    parsed.ParseFromString(request.SerializeToString())
    assert parsed.model_spec.name == "demo" and parsed.model_spec.version.value == 3
    assert parsed.model_spec.signature_name == "serving_default"
    values = {k: list(tf.make_ndarray(v)) for k, v in parsed.inputs.items()}
    assert values == {"image": [PNG], "audio": [b""], "text": [b"a cat"]}  # absent audio filled with b""
    assert all(v.dtype == tf.string.as_datatype_enum for v in parsed.inputs.values())


def test_make_predict_request_batches_and_checks():
    request = serving.make_predict_request({"image": [PNG, b""], "text": ["a", "b"]}, "demo", version_label="stable")
    assert request.model_spec.version_label == "stable"
    assert [d.size for d in request.inputs["text"].tensor_shape.dim] == [2]
    with pytest.raises(ValueError, match="different numbers of examples"):
        serving.make_predict_request({"image": [PNG, PNG], "text": ["a"]}, "demo")
    with pytest.raises(ValueError, match="unexpected input key"):
        serving.make_predict_request({"imgae": PNG}, "demo", modalities=["image"])
    with pytest.raises(TypeError, match="input 'image'"):
        serving.make_predict_request({"image": [1.5]}, "demo")
    with pytest.raises(ValueError, match="not both"):
        serving.make_predict_request({"image": PNG}, "demo", version=1, version_label="x")


def test_make_rest_body_row_and_columnar():
    inputs = {"image": [PNG, b""], "audio": [WAV, WAV], "text": ["a caf\u00e9", b"\xff\xfe"]}
    row = serving.make_rest_body(inputs)
    json.dumps(row)  # JSON-serialisable as is
    assert row["signature_name"] == "serving_default"
    first, second = row["instances"]
    assert base64.b64decode(first["image"]["b64"]) == PNG and second["image"] == {"b64": ""}
    assert first["text"] == "a caf\u00e9"  # valid UTF-8 text goes as a plain string
    assert base64.b64decode(second["text"]["b64"]) == b"\xff\xfe"  # invalid UTF-8 must be b64
    columnar = serving.make_rest_body(inputs, format="inputs")
    assert [base64.b64decode(v["b64"]) for v in columnar["inputs"]["audio"]] == [WAV, WAV]
    for body in (row, columnar):  # decoded exactly as TF Serving would
        tensors, _ = rest_format.request_to_tensors(json.loads(json.dumps(body)), SIGNATURE)
        assert list(tensors["image"]) == [PNG, b""]
        assert list(tensors["text"]) == ["a caf\u00e9".encode(), b"\xff\xfe"]
    with pytest.raises(ValueError, match="format"):
        serving.make_rest_body(inputs, format="rows")


def test_absent_modalities_are_sent_empty_by_default(tmp_path):
    body = serving.make_rest_body({"image": PNG, "text": "a cat"})
    assert body["instances"] == [{"image": {"b64": base64.b64encode(PNG).decode()}, "audio": {"b64": ""},
                                  "text": "a cat"}]
    tensors, _ = rest_format.request_to_tensors(body, SIGNATURE)  # TF Serving accepts it: every input is there
    assert list(tensors["audio"]) == [b""]
    # The model's inputs from an export directory (its newest version's metadata), or an inspect_export dict.
    version = tmp_path / "demo" / "2" / "assets.extra"
    version.mkdir(parents=True)
    (version / "mmkeras.json").write_text(json.dumps({"modalities": ["image", "audio"]}))
    for source in (tmp_path / "demo", str(tmp_path / "demo" / "2"), {"modalities": ["image", "audio"]}):
        assert serving.make_rest_body({"image": PNG}, modalities=source)["instances"] == [
            {"image": {"b64": base64.b64encode(PNG).decode()}, "audio": {"b64": ""}}]
    with pytest.raises(ValueError, match=r"unexpected input key\(s\) \['text'\]; the model takes \['image', 'audio'\]"):
        serving.make_rest_body({"text": "a"}, modalities=tmp_path / "demo")
    with pytest.raises(ValueError, match="not an mmkeras export"):
        serving.make_rest_body({"image": PNG}, modalities=tmp_path)
    with pytest.raises(ValueError, match="unknown name"):
        serving.model_modalities(["image", "video"])


def test_parse_responses_and_url():
    response = predict_pb2.PredictResponse()
    response.outputs["scores"].CopyFrom(tf.make_tensor_proto(np.eye(2, dtype=np.float32)))
    response.outputs["classes"].CopyFrom(tf.make_tensor_proto(np.array([b"cat", b"dog"], dtype=object)))
    out = serving.parse_predict_response(response)
    assert out["scores"].dtype == np.float32 and list(out["classes"]) == ["cat", "dog"]
    row = serving.parse_rest_response('{"predictions": [{"scores": [1.0, 0.0], "classes": "cat"}]}')
    np.testing.assert_array_equal(row["scores"], [[1.0, 0.0]])
    assert serving.parse_rest_response({"outputs": {"classes": ["cat"]}})["classes"].tolist() == ["cat"]
    with pytest.raises(RuntimeError, match="every input"):
        serving.parse_rest_response({"error": "mmkeras: every input is empty"})
    assert serving.rest_url("localhost", "demo") == "http://localhost:8501/v1/models/demo:predict"
    assert serving.rest_url("h", "demo", version=2, port=80) == "http://h:80/v1/models/demo/versions/2:predict"


# ---- the REST-format converter used by the contract tests ---------------------------------------


def test_rest_format_row_and_columnar_responses():
    outputs = {"scores": np.array([[0.25, 0.75]], np.float32), "classes": np.array([b"b"], dtype=object)}
    assert rest_format.tensors_to_response(outputs, "row") == {
        "predictions": [{"classes": "b", "scores": [0.25, 0.75]}]}
    assert rest_format.tensors_to_response(outputs, "columnar") == {
        "outputs": {"classes": ["b"], "scores": [[0.25, 0.75]]}}
    # One output: bare values; a "_bytes" output is b64-encoded.
    assert rest_format.tensors_to_response({"scores": outputs["scores"]}, "row") == {"predictions": [[0.25, 0.75]]}
    assert rest_format.tensors_to_response({"img_bytes": np.array([b"\x00"], object)}, "columnar") == {
        "outputs": [{"b64": "AA=="}]}
    with pytest.raises(rest_format.RestFormatError, match="same 0th"):
        rest_format.tensors_to_response({"a": np.zeros((2, 1)), "b": np.zeros((3, 1))}, "row")


def test_rest_format_request_rules():
    one = {"x": "DT_FLOAT"}
    tensors, fmt = rest_format.request_to_tensors({"instances": [[1, 2], [3, 4]]}, one)
    assert fmt == "row" and tensors["x"].dtype == np.float32 and tensors["x"].shape == (2, 2)
    tensors, fmt = rest_format.request_to_tensors({"inputs": [[1, 2]]}, one)
    assert fmt == "columnar" and tensors["x"].shape == (1, 2)
    bad = [
        ({"instances": [1], "inputs": [1]}, "exactly one"),
        ({}, "exactly one"),
        ({"instances": [{"image": {"b64": "x"}}]}, "named inputs"),
        ({"instances": [{"image": {"b64": "%%"}, "audio": "", "text": ""}]}, "base64"),
        ({"instances": [{"image": 3, "audio": "", "text": ""}]}, "DT_STRING"),
        ({"inputs": {"image": [["a"], []], "audio": [""], "text": [""]}}, "rectangular"),
        ({"inputs": {"video": [""]}}, "unknown input"),
    ]
    for body, message in bad:
        with pytest.raises(rest_format.RestFormatError, match=message):
            rest_format.request_to_tensors(body, SIGNATURE)


def test_saved_model_cli_parser():
    text = """
signature_def['serving_default']:
  The given SavedModel SignatureDef contains the following input(s):
    inputs['image'] tensor_info:
        dtype: DT_STRING
        shape: (-1)
        name: serving_default_image:0
  The given SavedModel SignatureDef contains the following output(s):
    outputs['scores'] tensor_info:
        dtype: DT_FLOAT
        shape: (-1, 10)
        name: StatefulPartitionedCall:2
  Method name is: tensorflow/serving/predict
"""
    sig = parse_show_all(text)["serving_default"]
    assert sig["inputs"]["image"] == {"dtype": "DT_STRING", "shape": (-1,), "name": "serving_default_image:0"}
    assert sig["outputs"]["scores"]["shape"] == (-1, 10) and sig["method"] == "tensorflow/serving/predict"
