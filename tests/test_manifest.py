"""The manifest path end to end on real files (MNIST PNGs, FSDD WAVs, captions): every preset's
modalities, text vocabulary, validation_data forms, class-name labels, and bad rows named by line."""

import csv
import json
import struct

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.data.errors import tf_error_message

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
N = 24


@pytest.fixture(scope="module")
def files(shared_data_dir, tmp_path_factory):
    """N real AV-digits pairs written as files, with a caption; returns (dir, rows, x, y)."""
    x, y = mmkeras.datasets.av_digits("train", data_dir=shared_data_dir)
    root = tmp_path_factory.mktemp("manifest")
    (root / "img").mkdir()
    (root / "wav").mkdir()
    rows = []
    for i in range(N):
        (root / "img" / f"{i}.png").write_bytes(x["image"][i])
        (root / "wav" / f"{i}.wav").write_bytes(x["audio"][i])
        rows.append({"image": f"img/{i}.png", "audio": f"wav/{i}.wav", "text": f"a {DIGITS[y[i]]} was written",
                     "label": int(y[i])})
    x = {"image": x["image"][:N], "audio": x["audio"][:N],
         "text": np.array([r["text"] for r in rows], dtype=object)}
    return root, rows, x, y[:N]


def write_csv(path, rows, fields=("image", "audio", "text", "label")):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


# One preset per set of modalities: what a manifest feeds depends only on the modalities.
PRESETS = ["image_small", "audio_small", "text_small", "image_audio_small", "image_text_small", "audio_text_small",
           "image_audio_text_small"]


def _modalities(preset):
    return tuple(sorted(mmkeras.get_preset(preset)["modalities"]))


def test_every_modality_set_of_a_preset_is_covered():
    registered = {_modalities(p) for p in mmkeras.list_presets()}
    assert registered == {_modalities(p) for p in PRESETS} and len(PRESETS) == 7


@pytest.mark.parametrize("preset", PRESETS)
def test_fit_on_a_manifest(preset, files):
    root, rows, _, y = files
    path = write_csv(root / f"{preset}.csv", rows)
    model = mmkeras.build_model(preset, num_classes=10, batch_size=8)
    history = model.fit(path, epochs=1, verbose=0)  # the text vocabulary is learned from the manifest
    assert np.isfinite(history.history["loss"][0])
    assert not (model.preprocessor.needs_adapt and "text" in model.modalities)


def test_vocabulary_learned_by_from_manifest_or_a_clear_error(files):
    root, rows, x, _ = files
    path = write_csv(root / "text.csv", rows, ("text", "label"))
    model = mmkeras.build_model("text_small", num_classes=10)
    with pytest.raises(ValueError, match=r"empty text vocabulary .*: call model.adapt\(train_texts\) first"):
        model.predict({"text": ["a three"]}, verbose=0)
    with pytest.raises(ValueError, match=r"call model.adapt\(train_texts\) before reading .*or pass adapt=True"):
        mmkeras.data.from_manifest(path, model=model, adapt=False)
    with pytest.raises(ValueError, match=r"empty text vocabulary: call model.adapt\(train_texts\) before reading"):
        model.evaluate(path, verbose=0)  # evaluation data never teaches the vocabulary
    ds = mmkeras.data.from_manifest(path, model=model, batch_size=8)  # adapts: "auto"
    assert "three" in model.preprocessor.text_vectorizer.get_vocabulary()
    assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["loss"][0])
    # A raw dataset that is not a manifest: fit learns the vocabulary from its text.
    fresh = mmkeras.build_model("text_small", num_classes=10)
    raw = tf.data.Dataset.from_tensor_slices(({"text": list(x["text"])}, files[3])).batch(8)
    fresh.fit(raw, epochs=1, verbose=0)
    assert "three" in fresh.preprocessor.text_vectorizer.get_vocabulary()


def test_validation_data_forms(files):
    root, rows, x, y = files
    path = write_csv(root / "val.csv", rows)
    model = mmkeras.build_model("image_audio_text_small", num_classes=10, batch_size=8)
    forms = {
        "manifest": path,
        "dataset": mmkeras.data.from_manifest(path, batch_size=8),  # raw: the model preprocesses it
        "tuple": (x, y),
        "raw dict with labels": {**x, "label": y},
    }
    for name, validation in forms.items():
        history = model.fit(x, y, validation_data=validation, epochs=1, verbose=0, batch_size=8)
        assert np.isfinite(history.history["val_loss"][0]), name
    with pytest.raises(ValueError, match="validation_data is a dict of inputs without labels"):
        model.fit(x, y, validation_data=x, epochs=1, verbose=0)


def test_class_name_labels_on_every_path(files):
    root, rows, x, y = files
    names = [DIGITS[i] for i in y]
    model = mmkeras.build_model("image_audio_small", num_classes=10, class_names=DIGITS, batch_size=8)
    xa = {"image": x["image"], "audio": x["audio"]}
    history = model.fit(xa, names, validation_data=(xa, names), epochs=1, verbose=0)  # in memory
    assert "val_loss" in history.history
    by_index = model.evaluate(xa, y, verbose=0)
    np.testing.assert_allclose(model.evaluate(xa, np.array(names), verbose=0), by_index, rtol=1e-6)
    named = write_csv(root / "named.csv", [{**r, "label": DIGITS[r["label"]]} for r in rows])
    np.testing.assert_allclose(model.evaluate(named, verbose=0), by_index, rtol=1e-5)  # manifest
    raw = mmkeras.data.from_manifest(named)  # no model, no class names: labels stay names ...
    np.testing.assert_allclose(model.evaluate(raw, verbose=0), by_index, rtol=1e-5)  # ... mapped by the model
    strings = tf.data.Dataset.from_tensor_slices((xa, names)).batch(8)  # any dataset of string labels
    np.testing.assert_allclose(model.evaluate(strings, verbose=0), by_index, rtol=1e-5)
    features = model.preprocess(xa)  # feature arrays, as the benchmarks train on
    np.testing.assert_allclose(model.evaluate(features, names, verbose=0), by_index, rtol=1e-5)
    assert np.isfinite(model.fit(features, y, epochs=1, verbose=0).history["loss"][0])

    with pytest.raises(ValueError, match=r"labels for head 'scores', example 2: label 'ten' is not one of the class "
                                         r"names \['zero', 'one', "):
        model.fit(xa, names[:2] + ["ten"] + names[3:], epochs=1, verbose=0)
    plain = mmkeras.build_model("image_audio_small", num_classes=10)
    with pytest.raises(ValueError, match=r"no class_names; build it with class_names=\[\.\.\.\]"):
        plain.fit(xa, names, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"named.csv' line 2: label 'five' is not an integer class index .*"
                                         r"class_names=\[\.\.\.\]"):
        plain.fit(raw, epochs=1, verbose=0)
    bad = tf.data.Dataset.from_tensor_slices((xa, ["ten"] * N)).batch(8)
    with pytest.raises(ValueError, match=r"mmkeras: labels for head 'scores' must be one of the class names "
                                         r"\['zero', .*got ten"):
        model.evaluate(bad, verbose=0)


def _bad_rows(root, rows, i, **cells):
    return [({**r, **cells} if j == i else r) for j, r in enumerate(rows)]


def test_bad_rows_are_named_before_training(files):
    root, rows, _, _ = files
    (root / "song.wav").write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 200)  # an MP3 named .wav
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_bytes(b"remember to buy milk")
    with open(root / "img" / "0.png", "rb") as f:
        (root / "cut.png").write_bytes(f.read()[:-30])
    cases = {
        "song.wav": ("audio", r"line 5: audio file '.*song.wav' is an MP3 file \(ID3 tag\), not a RIFF/WAVE file"),
        "empty.png": ("image", r"line 5: image file '.*empty.png' is empty \(0 bytes\); leave the cell empty"),
        "notes.png": ("image", r"line 5: image file '.*notes.png' is not a recognised format, not a PNG, JPEG"),
        "cut.png": ("image", r"line 5: image file '.*cut.png' looks truncated: a PNG must end with an IEND chunk"),
    }
    model = mmkeras.build_model("image_audio_small", num_classes=10)
    for file, (column, message) in cases.items():
        path = write_csv(root / "bad.csv", _bad_rows(root, rows, 3, **{column: file}))
        with pytest.raises(ValueError, match=message):
            mmkeras.data.from_manifest(path)
        with pytest.raises(ValueError, match=message):
            model.fit(path, epochs=1, verbose=0)
    path = write_csv(root / "bad.csv", _bad_rows(root, rows, 6, label=12))
    with pytest.raises(ValueError, match=r"bad.csv' line 8: label '12' is outside \[0, 10\) \(num_classes=10\)"):
        mmkeras.data.from_manifest(path, model=model)
    with pytest.raises(ValueError, match=r"bad.csv' line 8: label 12 is outside \[0, 10\)"):
        model.fit(mmkeras.data.from_manifest(path), epochs=1, verbose=0)  # raw manifest dataset: checked in fit
    (root / "bad.jsonl").write_text(json.dumps(rows[0]) + "\n" + "{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl' line 2 is not valid JSON"):
        mmkeras.data.from_manifest(root / "bad.jsonl")


def test_file_failing_in_the_graph_is_named_by_line(files):
    root, rows, _, _ = files
    # A-law WAV: a valid RIFF/WAVE header the pre-scan accepts; the decoder rejects the encoding.
    fmt = struct.pack("<HHIIHH", 6, 1, 8000, 8000, 1, 8)
    data = b"\xd5" * 800
    (root / "alaw.wav").write_bytes(b"RIFF" + struct.pack("<I", 4 + 24 + 8 + len(data)) + b"WAVEfmt "
                                    + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    path = write_csv(root / "graph.csv", _bad_rows(root, rows, 9, audio="alaw.wav"))
    model = mmkeras.build_model("image_audio_small", num_classes=10, batch_size=8)
    with pytest.raises(ValueError) as err:
        model.fit(path, epochs=1, verbose=0)
    message = str(err.value)
    expected = (f"manifest '{path}' line 11: audio file '{root / 'alaw.wav'}' could not be preprocessed: "
                "unsupported WAV encoding (format 6")  # the line and file replace "input 'audio', example 9"
    assert message.startswith(expected), message
    assert "File \"" not in message and "_check(" not in message  # the message, not the traceback or source


def test_raw_path_error_shows_the_message_not_source(files):
    _, _, x, y = files
    xa = {"image": x["image"].copy(), "audio": x["audio"].copy()}
    xa["audio"][3] = b"ID3\x03\x00\x00\x00" + b"\x00" * 100
    model = mmkeras.build_model("image_audio_small", num_classes=10)
    expected = ("mmkeras: input 'audio', example 3: not a RIFF/WAVE file (expected bytes starting with "
                "RIFF....WAVE; got 107 bytes)")
    for call in (lambda: model.fit(xa, y, epochs=1, verbose=0), lambda: model.evaluate(xa, y, verbose=0),
                 lambda: model.predict(xa, verbose=0), lambda: model.preprocess(xa)):
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == expected


def test_raw_dataset_error_shows_the_message_and_preprocessing_shows_progress(files, capsys):
    _, _, x, y = files
    audio = list(x["audio"])
    audio[5] = b"OggS" + b"\x00" * 60
    model = mmkeras.build_model("image_audio_small", num_classes=10)
    ds = tf.data.Dataset.from_tensor_slices(({"image": list(x["image"]), "audio": audio}, y)).batch(8)
    for call in (lambda: model.evaluate(ds, verbose=0), lambda: model.predict(ds, verbose=0)):
        with pytest.raises(ValueError, match=r"^mmkeras: input 'audio', example 5: not a RIFF/WAVE file "
                                             r"\(expected bytes starting with RIFF....WAVE; got 64 bytes\)$"):
            call()
    capsys.readouterr()
    model.fit({"image": x["image"], "audio": x["audio"]}, y, epochs=1, verbose=2)
    out = capsys.readouterr().out
    assert out.index(f"Preprocessing {N} raw examples") < out.index("loss:")  # before the first step
    assert f"{N}/{N} - " in out  # Keras' progress bar over the examples


def test_tf_error_message_formats():
    graph = ("{{function_node __inference_f_1}} assertion failed: [mmkeras: input \\'image\\' looks truncated; "
             "got bytes of length] [2921]\n\t [[{{node Assert_1/Assert}}]] [Op:__inference_f_1]")
    assert tf_error_message(graph) == "mmkeras: input 'image' looks truncated; got bytes of length 2921"
    eager = ('in user code:\n\n    File "a.py", line 87, in _decode_wav  *\n        check = _check(riff, "mmkeras: '
             'input \'{name}\' is not"\n\n    InvalidArgumentError: Expected \'False\' to be true. Summarized data: '
             'b"mmkeras: input \'audio\' is not a RIFF/WAVE file"\n')
    assert tf_error_message(eager) == "mmkeras: input 'audio' is not a RIFF/WAVE file"
    assert tf_error_message("Graph execution error:\n\nInvalidArgumentError: indices[3] = 12 is not in [0, 10)") == \
        "indices[3] = 12 is not in [0, 10)"
