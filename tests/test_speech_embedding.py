"""speech_embedding audio tower: the TensorFlow front end and the converted weights against openWakeWord's
ONNX models, the ONNX reader's bounds, the implied preprocessing, fit + export from raw WAV bytes.

``fixtures/speech_embedding_reference.npz`` holds three 1 s 16 kHz int16 clips (two FSDD
recordings, one chirp in noise) and what ONNX Runtime gave for them with openWakeWord
0.4.0's ``melspectrogram.onnx`` and ``embedding_model.onnx``;
``benchmarks/speech_embedding_parity.py --fixture`` wrote it (ONNX Runtime is needed only there).
"""

import struct
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.codecs import encode_wav
from mmkeras.modalities.features import SPEECH_EMBEDDING_FRONTEND
from mmkeras.preprocessing.audio import audio_features_batch, slaney_mel_matrix
from mmkeras.towers import AudioSpeechEmbedding
from mmkeras.weights import registry
from mmkeras.weights.onnx_reader import load_onnx_graph

FIXTURES = Path(__file__).parent / "fixtures"
REF = np.load(FIXTURES / "speech_embedding_reference.npz")


def _wavs(clips):
    return tf.constant([encode_wav(c.astype(np.float32) / 32768.0, 16000) for c in clips])


@pytest.fixture(scope="module")
def front_end():
    mel, present = audio_features_batch(_wavs(REF["clips"]), duration_s=1.0, frontend="speech_embedding",
                                        **SPEECH_EMBEDDING_FRONTEND)
    return mel.numpy(), present.numpy()


def test_front_end_from_wav_bytes_gives_the_onnx_log_mels(front_end):
    mel, present = front_end
    assert mel.shape == REF["mel"].shape == (3, 98, 32) and present.tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(mel, REF["mel"], atol=1e-4)  # measured 4.8e-6 (benchmarks/speech_embedding_parity)


def test_converted_weights_give_the_onnx_embeddings(front_end):
    tower = AudioSpeechEmbedding(weights="speech_embedding")
    out = tower(front_end[0])
    assert out["sequence"].shape == (3, 3, 96) and out["pooled"].shape == (3, 96)
    # Token t is the embedding of the 76-frame window at frame 8t, as openWakeWord slides it.
    np.testing.assert_allclose(np.asarray(out["sequence"]), REF["embedding"], atol=2e-3)  # measured 3.5e-5


def test_the_slaney_filterbank_is_the_onnx_one():
    graph = load_onnx_graph(registry.weights_file("speech_embedding", "melspectrogram.onnx"))
    np.testing.assert_allclose(slaney_mel_matrix(32, 512, 16000, 60.0, 3800.0), graph.initializers["1.melW"],
                               atol=1e-7)


def test_absent_audio_gives_zeros_and_short_clips_are_silence_padded():
    wavs = tf.constant([b"", encode_wav(0.1 * np.sin(np.arange(4000) / 5.0), 8000)])  # 0.5 s at 8 kHz
    mel, present = audio_features_batch(wavs, duration_s=1.0, frontend="speech_embedding",
                                        **SPEECH_EMBEDDING_FRONTEND)
    assert present.numpy().tolist() == [0.0, 1.0]
    assert not mel.numpy()[0].any() and np.isfinite(mel.numpy()).all()
    tail = mel.numpy()[1, -20:]  # zero padding: clamped 80 dB under the clip's peak
    np.testing.assert_allclose(tail, mel.numpy()[1].max() - 8.0, atol=1e-5)


@pytest.mark.parametrize("override,match", [
    ({"n_mels": 64}, r"frontend='speech_embedding' needs n_mels=32 .* got n_mels=64"),
    ({"sample_rate": 8000}, r"needs sample_rate=16000"),
    ({"frontend": "wav2vec"}, r"audio frontend must be one of \[None, 'speech_embedding'\], got 'wav2vec'"),
])
def test_a_preset_contradicting_the_front_end_names_the_key(override, match):
    preset = mmkeras.get_preset("audio_speech_embedding")
    preset["modalities"]["audio"]["preprocessing"].update(override)
    with pytest.raises(ValueError, match=match):
        mmkeras.build_model(preset, num_classes=2, compile=False, preprocessor=False)


def test_the_tower_needs_76_frames():
    with pytest.raises(ValueError, match=r"needs at least 76 frames .* got 61"):
        AudioSpeechEmbedding()(np.zeros((1, 61, 32), "float32"))
    with pytest.raises(ValueError, match=r"takes \[B, T, 32\] speech_embedding log-mels"):
        AudioSpeechEmbedding()(np.zeros((1, 98, 40), "float32"))


def test_layer_groups_cover_every_pretrained_layer_once():
    tower = AudioSpeechEmbedding()
    tower.build((None, 98, 32))
    grouped = [layer for group in tower.layer_groups() for layer in group]
    assert len(tower.layer_groups()) == 5 and sorted(map(id, grouped)) == sorted(map(id, tower.backbone_layers))
    tower.trainable = False
    assert not tower.trainable_weights


# ---- the ONNX reader: hand-made protobufs ------------------------------------------------------

def _varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number, payload):
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _model(*tensors, nodes=(b"\x22\x04Relu",)):
    graph = b"".join(_field(1, n) for n in nodes) + b"".join(_field(5, t) for t in tensors)
    return _varint(1 << 3) + _varint(8) + _field(7, graph)  # ir_version (a varint field, skipped), graph


def _tensor(name, dims, data, dtype=1, extra=b""):
    return (b"".join(_varint(1 << 3) + _varint(d) for d in dims) + _varint(2 << 3) + _varint(dtype)
            + _field(8, name.encode()) + _field(9, data) + extra)


def test_onnx_reader_reads_tensors_and_nodes(tmp_path):
    path = tmp_path / "m.onnx"
    conv = _field(1, b"x") + _field(1, b"w") + _field(2, b"y") + _field(4, b"Conv") + _field(
        5, _field(1, b"kernel_shape") + _varint(8 << 3 | 2) + _varint(2) + _varint(3) + _varint(1))
    path.write_bytes(_model(_tensor("w", [2, 3], struct.pack("<6f", *range(6))),
                            _tensor("shape", [2], struct.pack("<2q", -1, 4), dtype=7), nodes=(conv,)))
    graph = load_onnx_graph(path)
    np.testing.assert_array_equal(graph.initializers["w"], np.arange(6, dtype="float32").reshape(2, 3))
    assert graph.initializers["shape"].tolist() == [-1, 4]
    (node,) = graph.nodes_of("Conv")
    assert node.inputs == ("x", "w") and node.outputs == ("y",) and node.attributes == {"kernel_shape": (3, 1)}


@pytest.mark.parametrize("payload,match", [
    (b"\x00" * 64, r"not a readable ONNX model \(expected one graph"),
    (_model(_tensor("w", [2, 3], b"\x00" * 20)), r"tensor 'w' of shape \[2, 3\] needs 24 bytes, the file holds 20"),
    (_model(_tensor("w", [1], b"\x00" * 4, extra=_varint(14 << 3) + _varint(1))), r"external file \(refused\)"),
    (_model(_tensor("w", [1], b"\x00" * 4))[:-3], r"claims \d+ bytes, \d+ are left"),
    (_varint(7 << 3 | 2) + b"\xff" * 11, r"varint longer than 10 bytes"),
])
def test_onnx_reader_refuses_malformed_files_naming_them(tmp_path, payload, match):
    path = tmp_path / "bad.onnx"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=rf"bad\.onnx: .*{match}"):
        load_onnx_graph(path)


def test_a_file_that_is_not_speech_embedding_is_refused(tmp_path):
    path = tmp_path / "other.onnx"
    path.write_bytes(_model(_tensor("w", [1], b"\x00" * 4)))
    tower = AudioSpeechEmbedding(weights=str(path))
    with pytest.raises(ValueError, match=r"other\.onnx: not speech_embedding's graph \(expected 20 Conv nodes"):
        tower.build((None, 98, 32))


# ---- end to end: raw WAV bytes -> fit -> save without the package -> SavedModel ------------------

def _clips(n, seed=0):
    """``n`` 0.9 s 16 kHz clips: class 0 a low tone, class 1 a high tone (both with noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(14400) / 16000
    labels = np.arange(n) % 2
    wavs = [encode_wav(0.3 * np.sin(2 * np.pi * (300 + 900 * y) * t) + 0.02 * rng.standard_normal(len(t)), 16000)
            for y in labels]
    return {"audio": wavs}, labels


def test_pretrained_preset_trains_saves_without_the_package_and_exports_raw_wav(tmp_path, monkeypatch):
    keras.utils.set_random_seed(0)
    model = mmkeras.build_model("audio_speech_embedding", num_classes=2,
                                training={"learning_rate": 1e-3, "warmup_steps": 0})
    pre = model.mm_config["modalities"]["audio"]["preprocessing"]
    assert {k: pre[k] for k in SPEECH_EMBEDDING_FRONTEND} == SPEECH_EMBEDDING_FRONTEND
    assert pre["frontend"] == "speech_embedding" and "weights" not in model.mm_config["modalities"]["audio"]["tower"]
    x, y = _clips(8)
    features = model.preprocess(x)  # the graph front end, as tf.data runs it
    losses = [float(np.ravel(model.train_on_batch(features, y))[0]) for _ in range(4)]
    assert losses[-1] < losses[0]
    expected = np.asarray(model.predict_on_batch(features))
    model.save(tmp_path / "m.keras")
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    monkeypatch.setattr(registry, "_package_dir", lambda spec: None)  # the package is gone
    with pytest.raises(ValueError, match=r"pip install --no-deps openwakeword==0\.4\.0"):
        mmkeras.build_model("audio_speech_embedding", num_classes=2)
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded.predict_on_batch(features)), expected, atol=1e-5)
    export = mmkeras.export_saved_model(loaded, tmp_path / "export", warmup=False)
    served = tf.saved_model.load(export).signatures["serving_default"]
    np.testing.assert_allclose(served(audio=tf.constant(x["audio"]))["scores"].numpy(), expected, atol=1e-4)
