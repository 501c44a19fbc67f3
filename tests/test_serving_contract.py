"""The TF Serving contract, checked the way the C++ server runs an export.

One tri-modal model is exported once per module. A fresh Python process that
never imports mmkeras (tests/serving_utils/session_checks.py) audits its ops,
loads it with the TF1 SavedModel loader, replays its warm-up records and answers
gRPC ``PredictRequest`` wire bytes and REST JSON bodies by feeding signature
tensor names; ``saved_model_cli show --all`` runs beside it. The tests below only
read those answers.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

import mmkeras
from mmkeras import serving

# The helpers live in tests/serving_utils, whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_utils import examples  # noqa: E402
from serving_utils.saved_model_cli_output import parse_show_all  # noqa: E402

SESSION_CHECKS = Path(__file__).resolve().parent / "serving_utils" / "session_checks.py"
SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"
MODEL_NAME = "contract"
BAD = examples.bad_inputs()


def _one(raw, i):
    return {m: [v[i]] for m, v in raw.items()}


def _raw_request(inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    for key, values in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(list(values), dtype=tf.string))
    return request


def _grpc_requests(gen, real):
    """``{id: PredictRequest}``: good batches, absent modalities, the bad-input table, misuse."""
    base = _one(gen, 0)
    reqs = {"gen_batch": gen}
    if real is not None:
        reqs["real_batch"] = real
        reqs.update({f"real_{i}": _one(real, i) for i in range(len(real["image"]))})
    for m in ("image", "audio", "text"):
        reqs[f"absent_{m}"] = {**base, m: [b""]}
    reqs["only_text"] = {"image": [b""], "audio": [b""], "text": base["text"]}
    reqs["all_empty"] = {"image": [b""], "audio": [b""], "text": [b""]}
    reqs["all_empty_in_batch"] = {m: [gen[m][0], b""] for m in gen}
    for case, (m, value, _) in BAD.items():
        reqs[f"bad_{case}"] = {**base, m: [value]}
    reqs["bad_in_batch"] = {**{m: gen[m][:2] for m in gen}, "image": [gen["image"][0], b"not an image"]}
    out = {k: serving.make_predict_request(v, MODEL_NAME) for k, v in reqs.items()}
    # Built with the raw tensorflow-serving-api protos: not our helper, which refuses these misuses.
    out["handmade"] = _raw_request({m: gen[m][:1] for m in gen})
    out["missing_key"] = _raw_request({m: gen[m][:1] for m in ("image", "text")})
    out["batch_mismatch"] = _raw_request({"image": gen["image"][:2], "audio": gen["audio"][:1],
                                          "text": gen["text"][:1]})
    out["after_errors"] = serving.make_predict_request(gen, MODEL_NAME)
    return out


def _features_request(model, gen):
    """The ``features`` signature, fed what ``model.preprocess`` returns."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = "features"
    for key, value in model.preprocess(gen).items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def _rest_bodies(gen):
    import base64

    hand_row = {"instances": [{"image": {"b64": base64.b64encode(gen["image"][0]).decode()},
                               "audio": {"b64": base64.b64encode(gen["audio"][0]).decode()},
                               "text": gen["text"][0]}]}
    return {
        "rest_row": serving.make_rest_body(gen, format="instances"),
        "rest_columnar": serving.make_rest_body(gen, format="inputs"),
        "rest_row_handmade": hand_row,
        "rest_all_empty": serving.make_rest_body({"image": b"", "audio": b"", "text": ""}),
        "rest_bad_b64": {"instances": [{**hand_row["instances"][0], "image": {"b64": "%%%"}}]},
        "rest_both_formats": {"instances": [], "inputs": {}},
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving_contract")
    gen = examples.generated_examples()
    skip_reason = examples.real_data_missing()
    real, kinds = (None, None) if skip_reason else examples.real_examples()
    model = mmkeras.build_model("image_audio_text_small", num_classes=10)
    model.adapt({"text": examples.TEXTS})
    warm = real if real is not None else gen
    export_dir = mmkeras.export_saved_model(model, tmp / "saved_models" / MODEL_NAME,
                                            warmup_examples={m: v[:2] for m, v in warm.items()})
    # The CLI is a separate TensorFlow process: start it now, read it at the end.
    cli = subprocess.Popen([str(SAVED_MODEL_CLI), "show", "--all", "--dir", export_dir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    requests = []
    grpc_requests = {**_grpc_requests(gen, real), "features": _features_request(model, gen)}
    for rid, request in grpc_requests.items():
        path = tmp / f"{rid}.request"
        path.write_bytes(request.SerializeToString())
        requests.append({"id": rid, "kind": "grpc", "file": str(path)})
    requests += [{"id": rid, "kind": "rest", "body": body} for rid, body in _rest_bodies(gen).items()]
    job, result = tmp / "job.json", tmp / "result.json"
    job.write_text(json.dumps({"export_dir": export_dir, "model_name": MODEL_NAME, "requests": requests}))
    proc = subprocess.run([sys.executable, str(SESSION_CHECKS), str(job), str(result)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"session checks crashed:\n{proc.stderr[-4000:]}"
    cli_out, cli_err = cli.communicate(timeout=600)
    assert cli.returncode == 0, cli_err[-4000:]
    results = json.loads(result.read_text())
    expected = {"gen": model.predict(gen, verbose=0)}
    if real is not None:
        expected["real"] = model.predict(real, verbose=0)
    return {"model": model, "export_dir": export_dir, "results": results, "cli": parse_show_all(cli_out),
            "expected": expected, "gen": gen, "real": real, "kinds": kinds, "skip_reason": skip_reason}


def _answer(served, rid):
    return served["results"]["answers"][rid]


def _outputs(served, rid):
    answer = _answer(served, rid)
    assert answer["ok"], f"{rid}: {answer.get('status')}: {answer.get('message', '')[:2000]}"
    response = predict_pb2.PredictResponse()
    response.ParseFromString(Path(answer["response_file"]).read_bytes())
    return response


def _assert_valid(served, rid):
    out = serving.parse_predict_response(_outputs(served, rid))
    assert out["scores"].dtype == np.float32 and np.isfinite(out["scores"]).all(), rid
    np.testing.assert_allclose(out["scores"].sum(axis=1), 1.0, atol=1e-4)
    return out


def _assert_invalid_argument(served, rid, pattern):
    answer = _answer(served, rid)
    assert not answer["ok"], f"{rid} should fail but answered"
    assert answer["status"] == "InvalidArgumentError", answer
    assert re.search(pattern, answer["message"]), answer["message"][:1000]


def _names(modality):
    # Graph-mode Assert messages escape quotes: input \'image\'.
    return rf"mmkeras: input \\?'{modality}\\?'"


# ---- 1. saved_model_cli ----------------------------------------------------------------


def test_cli_shows_the_serving_signatures(served):
    sigs = served["cli"]
    default = sigs["serving_default"]
    assert default["method"] == "tensorflow/serving/predict"
    assert {k: (v["dtype"], v["shape"]) for k, v in default["inputs"].items()} == {
        m: ("DT_STRING", (-1,)) for m in ("image", "audio", "text")}
    assert {k: v["dtype"] for k, v in default["outputs"].items()} == {
        "scores": "DT_FLOAT", "classes": "DT_STRING", "present": "DT_FLOAT"}
    assert default["outputs"]["scores"]["shape"] == (-1, 10)
    features = sigs["features"]
    assert features["method"] == "tensorflow/serving/predict"
    assert {k: v["dtype"] for k, v in features["inputs"].items()} == {
        "image": "DT_FLOAT", "audio": "DT_FLOAT", "text": "DT_INT32", "present": "DT_FLOAT"}
    assert features["outputs"].keys() == default["outputs"].keys()
    for name, sig in sigs.items():
        if not name.startswith("__"):
            assert sig["method"] == "tensorflow/serving/predict", name
            assert all(":" in t["name"] for t in {**sig["inputs"], **sig["outputs"]}.values())


def test_inspect_export_agrees_with_the_cli(served, capsys):
    info = mmkeras.inspect_export(Path(served["export_dir"]).parent)
    assert "serving_default" in capsys.readouterr().out
    for name, sig in served["cli"].items():
        if name.startswith("__"):
            continue
        assert {k: (v["dtype"], tuple(v["shape"])) for k, v in info["signatures"][name]["inputs"].items()} == {
            k: (v["dtype"], v["shape"]) for k, v in sig["inputs"].items()}


# ---- 2. op audit --------------------------------------------------------------------------


def test_every_op_is_registered_in_bare_tensorflow(served):
    audit = served["results"]["audit"]
    assert audit["unregistered_ops"] == []
    assert audit["tensorflow_text_ops"] == []  # TextVectorization preset: core ops only
    assert not [op for op in audit["core_ops"] if op.startswith("IO>")]  # never tensorflow-io
    assert {"DecodeImage", "RFFT", "Assert", "LookupTableFindV2"} <= set(audit["core_ops"])


def test_the_server_process_never_imports_mmkeras(served):
    assert served["results"]["mmkeras_imported"] is False
    assert served["results"]["signatures"] == ["__saved_model_init_op", "features", "serving_default"]


def test_warmup_records_load_and_run(served):
    warm = served["results"]["warmup"]
    assert [w["batch"] for w in warm] == [1, 1, 2, 2]  # the last one calls the features signature
    assert all(w["finite"] for w in warm)


# ---- 3, 4, 6. session run on real bytes, gRPC wire format, parity -------------------------


def test_generated_batch_matches_model_predict(served):
    response = _outputs(served, "gen_batch")
    assert response.model_spec.name == MODEL_NAME and response.model_spec.signature_name == "serving_default"
    assert response.outputs["scores"].dtype == tf.float32.as_datatype_enum
    out = _assert_valid(served, "gen_batch")
    np.testing.assert_allclose(out["scores"], served["expected"]["gen"], atol=1e-5, rtol=0)
    names = served["model"].class_names
    assert list(out["classes"]) == [names[i] for i in served["expected"]["gen"].argmax(1)]
    np.testing.assert_array_equal(out["present"], 1.0)


def test_real_png_jpeg_wav_batch_matches_model_predict(served):
    if served["real"] is None:
        pytest.skip(served["skip_reason"])
    out = _assert_valid(served, "real_batch")
    np.testing.assert_allclose(out["scores"], served["expected"]["real"], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(out["present"], 1.0)
    for i, kind in enumerate(served["kinds"]):  # batch 1 == row i of the batch
        one = _assert_valid(served, f"real_{i}")
        np.testing.assert_allclose(one["scores"][0], out["scores"][i], atol=1e-5, rtol=0, err_msg=kind)


def test_features_signature_gives_the_same_scores(served):
    response = _outputs(served, "features")
    assert response.model_spec.signature_name == "features"
    out = serving.parse_predict_response(response)
    np.testing.assert_allclose(out["scores"], served["expected"]["gen"], atol=1e-5, rtol=0)


def test_handmade_proto_request(served):
    out = _assert_valid(served, "handmade")
    np.testing.assert_allclose(out["scores"][0], served["expected"]["gen"][0], atol=1e-5, rtol=0)


# ---- 5. REST JSON ----------------------------------------------------------------------------


def test_rest_row_format(served):
    answer = _answer(served, "rest_row")
    assert answer["http_status"] == 200, answer
    predictions = answer["body"]["predictions"]
    assert len(predictions) == len(served["gen"]["image"])
    assert all(set(p) == {"scores", "classes", "present"} for p in predictions)
    assert isinstance(predictions[0]["classes"], str) and len(predictions[0]["scores"]) == 10
    np.testing.assert_allclose([p["scores"] for p in predictions], served["expected"]["gen"], atol=1e-5)
    hand = _answer(served, "rest_row_handmade")["body"]["predictions"]
    np.testing.assert_allclose(hand[0]["scores"], predictions[0]["scores"], atol=1e-6)


def test_rest_columnar_format(served):
    answer = _answer(served, "rest_columnar")
    assert answer["http_status"] == 200, answer
    outputs = answer["body"]["outputs"]
    assert set(outputs) == {"scores", "classes", "present"}
    assert np.shape(outputs["scores"]) == (len(served["gen"]["image"]), 10)
    np.testing.assert_allclose(outputs["scores"], served["expected"]["gen"], atol=1e-5)
    parsed = serving.parse_rest_response(answer["body"])
    np.testing.assert_allclose(parsed["scores"], outputs["scores"])


def test_rest_errors(served):
    empty = _answer(served, "rest_all_empty")
    assert empty["http_status"] == 400 and "every input" in empty["body"]["error"]
    for rid in ("rest_bad_b64", "rest_both_formats"):
        answer = _answer(served, rid)
        assert answer["http_status"] == 400 and answer["body"]["error"], rid


# ---- 7. missing modalities ---------------------------------------------------------------------


@pytest.mark.parametrize("modality,index", [("image", 0), ("audio", 1), ("text", 2)])
def test_one_absent_modality_gives_valid_scores(served, modality, index):
    out = _assert_valid(served, f"absent_{modality}")
    expected = np.ones(3, np.float32)
    expected[index] = 0.0
    np.testing.assert_array_equal(out["present"][0], expected)


def test_text_only_gives_valid_scores(served):
    out = _assert_valid(served, "only_text")
    np.testing.assert_array_equal(out["present"][0], [0.0, 0.0, 1.0])


def test_every_modality_empty_is_invalid_argument(served):
    _assert_invalid_argument(served, "all_empty", _names("image/audio/text") + ", example 0: every input is empty")
    _assert_invalid_argument(served, "all_empty_in_batch", _names("image/audio/text") + ", example 1: every input")


# ---- bad input at serving (docs/serving.md table) ----------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_table(served, case):
    modality, _, expected = BAD[case]
    if expected == "error":
        _assert_invalid_argument(served, f"bad_{case}", _names(modality))
        return
    out = _assert_valid(served, f"bad_{case}")
    index = ["image", "audio", "text"].index(modality)
    assert out["present"][0, index] == (0.0 if expected == "absent" else 1.0)


def test_one_bad_example_fails_its_whole_request(served):
    _assert_invalid_argument(served, "bad_in_batch", _names("image") + ", example 1: not a PNG")


def test_inputs_of_different_batch_sizes(served):
    _assert_invalid_argument(served, "batch_mismatch", _names("audio") + r": 1 examples, but input \\?'image\\?' has 2")


def test_request_missing_an_input_key_is_rejected(served):
    _assert_invalid_argument(served, "missing_key", r"Missing but required: \{audio\}")


def test_process_keeps_serving_after_errors(served):
    before = serving.parse_predict_response(_outputs(served, "gen_batch"))["scores"]
    after = serving.parse_predict_response(_outputs(served, "after_errors"))["scores"]
    np.testing.assert_array_equal(before, after)


# ---- tensorflow-text ops (WordPiece presets) -------------------------------------------------------


def test_wordpiece_export_lists_tensorflow_text_ops_and_serves(tmp_path):
    vocab = ["[PAD]", "[UNK]", "a", "red", "cat", "##s", "zebra"]
    model = mmkeras.build_model(
        "text_small", num_classes=2,
        modalities={"text": {"preprocessing": {"tokenizer": "wordpiece", "vocabulary": vocab, "sequence_length": 6,
                                               "vocab_size": 16},
                             "tower": {"embedding_dim": 8, "filters": 4, "dim": 8}}})
    export_dir = mmkeras.export_saved_model(model, tmp_path / "wp")
    request = tmp_path / "text.request"
    request.write_bytes(serving.make_predict_request({"text": ["red cats", "\xff zebra"]}, "wp",
                                                       modalities=export_dir).SerializeToString())
    job, result = tmp_path / "job.json", tmp_path / "result.json"
    requests = [{"id": "t", "kind": "grpc", "file": str(request)}]
    job.write_text(json.dumps({"export_dir": export_dir, "requests": requests}))
    proc = subprocess.run([sys.executable, str(SESSION_CHECKS), str(job), str(result)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(result.read_text())
    audit = results["audit"]
    assert audit["unregistered_ops"] == [] and audit["tensorflow_text_ops"], audit
    assert all(w["finite"] for w in results["warmup"])
    response = predict_pb2.PredictResponse()
    response.ParseFromString(Path(results["answers"]["t"]["response_file"]).read_bytes())
    np.testing.assert_allclose(serving.parse_predict_response(response)["scores"],
                               model.predict({"text": ["red cats", "\xff zebra"]}, verbose=0), atol=1e-5)
