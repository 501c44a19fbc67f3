"""Export layout, warm-up requests, metadata, models.config and mixed-precision dtypes.

The wire-level serving contract (fresh process, TF1 session, gRPC/REST) is in
test_serving_contract.py; these tests check what the export writes.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

import mmkeras
from mmkeras.export import saved_model as saved_model_module
from mmkeras.export.metadata import read_signatures
from mmkeras.export.warmup import encode_predict_log

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_utils import examples  # noqa: E402


def _warmup_logs(version_dir):
    path = Path(version_dir) / "assets.extra" / "tf_serving_warmup_requests"
    logs = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    return logs


@pytest.fixture(scope="module")
def image_model():
    """The cheapest model to export: layout and versioning do not depend on the preset."""
    return mmkeras.build_model("image_small", num_classes=3)


@pytest.fixture(scope="module")
def trimodal_export(tmp_path_factory):
    model = mmkeras.build_model("image_audio_text_small", num_classes=4)
    model.adapt({"text": examples.TEXTS})
    path = mmkeras.export_saved_model(model, tmp_path_factory.mktemp("trimodal") / "demo")
    return model, path


# ---- layout and versions -----------------------------------------------------------------------


def test_versions_increment_and_are_never_overwritten(image_model, tmp_path):
    base = tmp_path / "saved_models" / "digits"
    assert mmkeras.export_saved_model(image_model, base) == str(base / "1")
    assert mmkeras.export_saved_model(image_model, base, warmup=False) == str(base / "2")
    stamp = (base / "1" / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="immutable"):
        mmkeras.export_saved_model(image_model, base, version=1)
    assert (base / "1" / "saved_model.pb").stat().st_mtime_ns == stamp
    assert mmkeras.export_saved_model(image_model, base, version=1, overwrite=True, warmup=False) == str(base / "1")
    assert not (base / "1" / "assets.extra" / "tf_serving_warmup_requests").exists()  # the new one replaced it
    with pytest.raises(ValueError, match="positive"):
        mmkeras.export_saved_model(image_model, base, version=0)
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # no temp or old directories left


def test_a_failing_export_leaves_nothing_behind(image_model, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(saved_model_module, "export_metadata", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        mmkeras.export_saved_model(image_model, tmp_path / "m")
    assert list((tmp_path / "m").iterdir()) == []


# ---- warm-up requests ----------------------------------------------------------------------------


def test_default_warmup_requests_are_valid_prediction_logs(trimodal_export):
    model, path = trimodal_export
    logs = _warmup_logs(path)
    # All present, each modality absent once, a JPEG, then the five together; last the five's features.
    assert [int(log.predict_log.request.inputs["image"].tensor_shape.dim[0].size) for log in logs] == [1] * 5 + [5, 5]
    for log in logs[:-1]:
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert set(request.inputs) == {"image", "audio", "text"}
        assert all(t.dtype == tf.string.as_datatype_enum for t in request.inputs.values())
    batch = {k: tf.make_ndarray(v) for k, v in logs[-2].predict_log.request.inputs.items()}
    assert batch["image"][0].startswith(b"\x89PNG") and batch["audio"][0].startswith(b"RIFF")
    assert batch["image"][4].startswith(b"\xff\xd8\xff")
    assert [bool(len(v)) for v in batch["image"]] == [True, False, True, True, True]
    features = logs[-1].predict_log.request
    assert features.model_spec.signature_name == "features"
    assert set(features.inputs) == set(model.preprocessor.feature_shapes())
    assert json.loads((Path(path) / "assets.extra" / "mmkeras.json").read_text())["warmup_records"] == 7


def test_hand_encoded_prediction_log_equals_the_proto_api():
    inputs = {"text": np.array([b"a cat", b""], dtype=object), "image": np.array([b"\x89PNG..."], dtype=object)}
    expected = prediction_log_pb2.PredictionLog()
    expected.predict_log.request.model_spec.name = "demo"
    expected.predict_log.request.model_spec.signature_name = "serving_default"
    for key, value in inputs.items():
        expected.predict_log.request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    parsed = prediction_log_pb2.PredictionLog()
    parsed.ParseFromString(encode_predict_log(inputs, model_name="demo"))
    assert parsed == expected
    assert parsed.WhichOneof("log_type") == "predict_log"


def test_warmup_examples_argument(image_model, tmp_path):
    pngs = examples.generated_examples(3)["image"]
    path = mmkeras.export_saved_model(image_model, tmp_path / "m", warmup_examples={"image": pngs})
    logs = _warmup_logs(path)
    assert len(logs) == 5  # one per example, one batch of three, then their features
    request = logs[1].predict_log.request
    assert isinstance(request, predict_pb2.PredictRequest)
    assert list(tf.make_ndarray(request.inputs["image"])) == [pngs[1]]


def test_bad_warmup_examples_are_refused_before_writing(image_model, tmp_path):
    good = examples.generated_examples(2)["image"]
    with pytest.raises(ValueError, match=r"example 1 fails at serving.*input \\?'image\\?'"):
        mmkeras.export_saved_model(image_model, tmp_path / "m", warmup_examples={"image": [good[0], b"junk"]})
    with pytest.raises(ValueError, match="unexpected input key"):
        mmkeras.export_saved_model(image_model, tmp_path / "m", warmup_examples={"image": good, "text": ["a", "b"]})
    assert not (tmp_path / "m").exists() or list((tmp_path / "m").iterdir()) == []


# ---- metadata and inspect_export -------------------------------------------------------------------


def test_metadata_tells_a_client_what_to_send(trimodal_export):
    model, path = trimodal_export
    meta = json.loads((Path(path) / "assets.extra" / "mmkeras.json").read_text())
    assert meta["modalities"] == ["image", "audio", "text"]
    assert meta["class_names"] == {"scores": ["0", "1", "2", "3"]}
    assert meta["tensorflow_version"] == tf.__version__ and meta["mmkeras_version"] == mmkeras.__version__
    assert tf.__version__ in meta["serving_requirement"]
    assert meta["inputs"]["audio"]["preprocessing"]["sample_rate"] == model.preprocessor.config["audio"]["sample_rate"]
    assert meta["signatures"]["serving_default"]["inputs"]["image"] == {"dtype": "DT_STRING", "shape": [-1]}
    assert meta["preset"]["name"] == model.mm_config["name"]


def test_inspect_export(trimodal_export, capsys):
    _, path = trimodal_export
    info = mmkeras.inspect_export(Path(path).parent)  # a base directory: newest version
    printed = capsys.readouterr().out
    assert info["version"] == 1 and info["warmup_requests"]
    assert info["signatures"]["serving_default"]["method"] == "tensorflow/serving/predict"
    assert info["signatures"]["serving_default"]["outputs"]["scores"] == {"dtype": "DT_FLOAT", "shape": [-1, 4]}
    for text in ("serving_default", "image: DT_STRING", "classes of 'scores'", '"b64"', "or newer"):
        assert text in printed
    assert mmkeras.inspect_export(path, print_summary=False)["path"] == path
    with pytest.raises(FileNotFoundError):
        mmkeras.inspect_export(Path(path).parent / "nothing-here")


# ---- op libraries a client must load ----------------------------------------------------------------


def test_metadata_and_inspect_name_the_op_libraries_a_client_must_load(trimodal_export, tmp_path, capsys):
    _, path = trimodal_export
    assert json.loads((Path(path) / "assets.extra" / "mmkeras.json").read_text())["client_op_libraries"] == {}
    mmkeras.inspect_export(path)
    assert "op libraries: none beyond TensorFlow" in capsys.readouterr().out
    model = mmkeras.build_model(
        "text_small", num_classes=2,
        modalities={"text": {"preprocessing": {"tokenizer": "wordpiece", "vocabulary": ["[PAD]", "[UNK]", "cat"],
                                               "sequence_length": 4, "vocab_size": 8},
                             "tower": {"embedding_dim": 4, "filters": 2, "dim": 4}}})
    wordpiece = mmkeras.export_saved_model(model, tmp_path / "wp", warmup=False)
    recorded = json.loads((Path(wordpiece) / "assets.extra" / "mmkeras.json").read_text())["client_op_libraries"]
    assert set(recorded) == {"tensorflow_text"} and "FastWordpieceTokenizeWithOffsets" in recorded["tensorflow_text"]
    info = mmkeras.inspect_export(wordpiece)
    printed = capsys.readouterr().out
    assert "must `import tensorflow_text` before tf.saved_model.load" in printed
    assert "TF Serving: tensorflow_model_server" in printed
    # An export from before the key existed: inspect reads the ops from the graph instead.
    meta_file = Path(wordpiece) / "assets.extra" / "mmkeras.json"
    meta_file.write_text(json.dumps({k: v for k, v in info.items() if k != "client_op_libraries"}))
    assert mmkeras.inspect_export(wordpiece, print_summary=False)["client_op_libraries"] == recorded


# ---- finite features that overflow inside the model ---------------------------------------------


def _extreme_features(model, batch=2):
    """What ``model.preprocess`` could return, but with example 1's image at 3e38 (finite)."""
    shapes = model.preprocessor.feature_shapes()
    features = {n: np.zeros((batch,) + tuple(s), d) for n, (s, d) in shapes.items()}
    features["present"][:] = 1.0
    if "audio_windows" in features:
        features["audio_windows"][:] = 1.0
    features["image"][1] = 3e38
    return features


@pytest.mark.parametrize("kind", ["classifier", "contrastive"])
def test_features_that_overflow_the_model_are_an_invalid_argument(kind, trimodal_export, tmp_path):
    if kind == "classifier":
        model, path = trimodal_export
    else:
        from tests._av_helpers import TINY_AUDIO, TINY_IMAGE

        model = mmkeras.build_model({"name": "tiny_contrastive", "contrastive": {"dim": 8},
                                     "modalities": {"image": dict(TINY_IMAGE), "audio": dict(TINY_AUDIO)}}, seed=0)
        path = mmkeras.export_saved_model(model, tmp_path / "c", warmup=False)
    features = _extreme_features(model)
    local = model.embed_features(features) if kind == "contrastive" else {"scores": model(features)}
    assert not all(np.isfinite(np.asarray(v)).all() for v in local.values())  # the model itself overflows
    served = tf.saved_model.load(path).signatures["features"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"input \\?'image\\?', example 1: the model\\?'s output is not finite .*"
                             r"largest magnitude 3.000e\+38"):
        served(**{n: tf.constant(v) for n, v in features.items()})
    features["image"][1] = 0.5  # in range: answered, finite
    out = served(**{n: tf.constant(v) for n, v in features.items()})
    assert all(np.isfinite(v.numpy()).all() for v in out.values() if v.dtype.is_floating)


# ---- models.config ----------------------------------------------------------------------------------


def test_models_config_is_a_model_server_config(tmp_path):
    path = mmkeras.export.write_models_config(
        {"avdigits": "/models/avdigits", "sentiment": "/models/sent iment \"q\""}, tmp_path / "models.config",
        version_policy={"sentiment": [1, 3]})
    config = text_format.Parse(Path(path).read_text(), model_server_config_pb2.ModelServerConfig())
    entries = {c.name: c for c in config.model_config_list.config}
    assert entries["avdigits"].base_path == "/models/avdigits"
    assert entries["avdigits"].model_platform == "tensorflow"
    assert not entries["avdigits"].HasField("model_version_policy")
    assert entries["sentiment"].base_path == '/models/sent iment "q"'
    assert list(entries["sentiment"].model_version_policy.specific.versions) == [1, 3]
    text = mmkeras.export.models_config_text({"m": "/m"}, version_policy="all")
    assert text_format.Parse(text, model_server_config_pb2.ModelServerConfig()).model_config_list.config[0] \
        .model_version_policy.HasField("all")
    for bad in ({}, {"bad name": "/x"}):
        with pytest.raises(ValueError):
            mmkeras.export.models_config_text(bad)
    with pytest.raises(ValueError, match="version policy"):
        mmkeras.export.models_config_text({"m": "/m"}, version_policy=[0])


# ---- mixed precision: every output float32 ---------------------------------------------------------


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_exports_float32_outputs(policy, tmp_path):
    model = mmkeras.build_model("image_audio_text_small", num_classes=4, mixed_precision=policy)
    model.adapt({"text": examples.TEXTS})
    raw = examples.generated_examples(3)
    path = mmkeras.export_saved_model(model, tmp_path / policy, warmup=False)
    for name, sig in read_signatures(path).items():
        for key, out in sig["outputs"].items():
            assert out["dtype"] == ("DT_STRING" if key == "classes" else "DT_FLOAT"), (policy, name, key)
    served = tf.saved_model.load(path).signatures["serving_default"]
    out = served(**{m: tf.constant(v) for m, v in raw.items()})
    assert out["scores"].dtype == tf.float32 and out["present"].dtype == tf.float32
    assert np.isfinite(out["scores"].numpy()).all()
    np.testing.assert_allclose(out["scores"].numpy(), model.predict(raw, verbose=0), atol=1e-2)
    assert json.loads((Path(path) / "assets.extra" / "mmkeras.json").read_text())["preset"]["mixed_precision"] == policy
