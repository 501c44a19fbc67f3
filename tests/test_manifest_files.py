"""What a manifest may name, and how its files are read: stat before open, kind and size
refused by line, the checked file is the file read, and text cells as users write them."""

import json
import os

import numpy as np
import pytest

import mmkeras
from mmkeras.cli import _examples
from mmkeras.codecs import encode_png

PNG = encode_png(np.zeros((4, 4, 3), np.uint8))


def _write(root, cells, header="image,label", name="m.csv", encoding="utf-8"):
    root.mkdir(exist_ok=True)
    (root / "ok.png").write_bytes(PNG)
    path = root / name
    path.write_text("\n".join([header, *cells]) + "\n", encoding=encoding)
    return path


def _refused(path, match, **kwargs):
    with pytest.raises(ValueError, match=match):
        mmkeras.data.from_manifest(path, **kwargs)


@pytest.mark.parametrize("check_files", [True, False])
def test_a_fifo_is_refused_by_kind_without_being_opened(tmp_path, check_files):
    os.mkfifo(tmp_path / "pipe.png")  # opening it would block until a writer comes
    path = _write(tmp_path, ["ok.png,0", "pipe.png,0"])
    _refused(path, r"line 3: image file .*pipe.png' is a FIFO \(named pipe\), not a regular file",
             check_files=check_files)


def test_a_directory_and_a_character_device_are_named(tmp_path):
    (tmp_path / "dir.png").mkdir()
    _refused(_write(tmp_path, ["dir.png,0"]), r"line 2: image file .* is a directory")
    # /dev/zero reads forever and stat()s as 0 bytes: it must not be called "empty".
    path = _write(tmp_path, ["ok.png,0", "/dev/zero,1"])
    _refused(path, r"line 3: image file '/dev/zero' is a character device", allow_outside=True, check_files=False)


def test_an_oversized_sparse_file_is_refused_before_any_read(tmp_path):
    # A PNG head, a hole and an IEND tail: it passes a 16-byte head/tail check.
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.write(PNG[:16])
        f.truncate((64 << 20) - 12)
        f.seek(0, os.SEEK_END)
        f.write(b"IEND\xaeB`\x82\x00\x00\x00\x00")
    path = _write(tmp_path, ["ok.png,0", "big.png,0"])
    for check_files in (True, False):
        _refused(path, r"line 3: image file .*big.png' is 67108864 bytes, more than the limit max_bytes=16777216",
                 check_files=check_files)
    model = mmkeras.build_model("image_small", num_classes=2,
                                modalities={"image": {"preprocessing": {"max_bytes": 1000}}})
    (tmp_path / "mid.png").write_bytes(PNG + b"\0" * 2000)
    _refused(_write(tmp_path, ["mid.png,0"]), r"line 2: .* more than the limit max_bytes=1000", model=model)


def test_the_file_read_is_the_file_that_was_checked(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG + b"secret")
    data = tmp_path / "set"
    path = _write(data, ["ok.png,0", "b.png,1"])
    (data / "b.png").write_bytes(PNG)
    (data / "b.png").write_bytes(PNG + b"\0\0")  # read exactly, trailing NULs included
    assert next(iter(mmkeras.data.from_manifest(path, check_files=False)))[0]["image"].numpy()[1] == PNG + b"\0\0"
    (data / "b.png").write_bytes(PNG)
    ds = mmkeras.data.from_manifest(path, batch_size=2)
    assert next(iter(ds))[0]["image"].numpy()[1] == PNG
    # Swapped for a symlink (to a file outside), or rewritten, after the check: never read.
    os.remove(data / "b.png")
    os.symlink(secret, data / "b.png")
    with pytest.raises(Exception, match=r"line 3: image file .*b.png' changed after it was checked"):
        next(iter(ds))
    os.remove(data / "b.png")
    (data / "b.png").write_bytes(PNG + b"more")
    with pytest.raises(Exception, match="changed after it was checked"):
        next(iter(ds))


def test_excel_csv_with_a_byte_order_mark_reads(tmp_path):
    path = _write(tmp_path, ["ok.png,0"], encoding="utf-8-sig")
    features, labels = next(iter(mmkeras.data.from_manifest(path)))
    assert features["image"].numpy()[0] == PNG and labels.numpy().tolist() == [0]


def test_long_text_cells_work_up_to_max_text_bytes(tmp_path):
    caption = "a long caption " * 20_000  # 300 KB: over the csv module's 128 KiB default
    path = _write(tmp_path, [f"ok.png,{caption},0"], header="image,text,label")
    features, _ = next(iter(mmkeras.data.from_manifest(path)))
    assert features["text"].numpy()[0].decode() == caption
    _refused(path, r"line 2.*max_text_bytes=1000", max_text_bytes=1000)
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(json.dumps({"image": "ok.png", "text": caption, "label": 0}) + "\n")
    assert next(iter(mmkeras.data.from_manifest(jsonl)))[0]["text"].numpy()[0].decode() == caption
    _refused(jsonl, r"line 1, column 'text': \d+ bytes, more than max_text_bytes=250000", max_text_bytes=250_000)


def test_bad_jsonl_rows_name_their_line(tmp_path):
    path = tmp_path / "m.jsonl"
    (tmp_path / "ok.png").write_bytes(PNG)
    good = json.dumps({"image": "ok.png", "label": 0})
    path.write_text(good + "\n" + '{"image": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    _refused(path, r"line 2 nests JSON too deeply")
    path.write_text(good + "\n" + json.dumps({"image": "ok\u0000.png", "label": 0}) + "\n")
    _refused(path, r"line 2, column 'image': path .* holds a NUL byte")
    path.write_text(good + "\n" + json.dumps({"image": {"path": "ok.png"}, "label": 0}) + "\n")
    _refused(path, r"line 2, column 'image': expected a string, got a JSON dict")


def test_missing_files_and_empty_rows_name_their_line(tmp_path):
    _refused(_write(tmp_path, ["ok.png,0", "gone.png,0"]), r"line 3: 1 image file\(s\) do not exist, the first .*gone")
    path = _write(tmp_path, ["ok.png,,0", ",,1"], header="image,text,label")
    _refused(path, r"line 3: every modality column \['image', 'text'\] is empty")


def test_outside_paths_name_the_line_and_allow_outside_works_everywhere(tmp_path):
    (tmp_path / "outside.png").write_bytes(PNG)
    path = _write(tmp_path / "set", ["ok.png,0", "../outside.png,1"])
    model = mmkeras.build_model("image_small", num_classes=2)
    calls = {"fit": lambda **k: model.fit(path, epochs=1, verbose=0, **k),
             "evaluate": lambda **k: model.evaluate(path, verbose=0, **k),
             "predict": lambda **k: model.predict(path, verbose=0, **k),
             "adapt": lambda **k: model.adapt(path, **k),
             "report": lambda **k: mmkeras.evaluation.report(model, path, **k)}
    for _name, call in calls.items():
        with pytest.raises(ValueError, match=r"line 3, column 'image': path '../outside.png' resolves to .* outside"):
            call()
        call(allow_outside=True)  # reads it


def test_a_vae_adapts_and_fits_from_a_manifest(tmp_path):
    (x, _), _ = mmkeras.datasets.synthetic(num_classes=2, num_train=8, num_test=0)
    rows = []
    for i in range(8):
        (tmp_path / f"{i}.png").write_bytes(x["image"][i])
        (tmp_path / f"{i}.wav").write_bytes(x["audio"][i])
        rows.append(f"{i}.png,{i}.wav")
    path = _write(tmp_path, rows, header="image,audio")
    vae = mmkeras.build_model("image_audio_vae_small")
    history = vae.fit(path, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert all(vae.get_layer(f"{m}_decoder").statistics_set() for m in vae.decoded)


def test_predict_files_are_stated_before_they_are_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "big.png").write_bytes(PNG + b"\0" * 2000)
    cases = {str(tmp_path / "pipe.png"): "is a FIFO", str(tmp_path / "dir.png"): "is a directory",
             "/dev/zero": "is a character device", str(tmp_path / "gone.png"): "does not exist",
             str(tmp_path / "big.png"): "is 2069 bytes, more than the limit max_bytes=1000 for image"}
    for file, why in cases.items():
        with pytest.raises(ValueError, match=rf"input file '{file}' {why}"):
            _examples([file], [], ["image"], limits={"image": {"max_bytes": 1000}})
    (tmp_path / "ok.png").write_bytes(PNG)
    (tmp_path / "a.txt").write_text(" a caption \n")
    examples, _ = _examples([str(tmp_path / "ok.png"), str(tmp_path / "a.txt")], [], ["image", "text"])
    assert examples == [{"image": PNG, "text": "a caption"}]


def test_a_file_over_a_graph_limit_names_its_line_in_every_command(tmp_path):
    (tmp_path / "wide.png").write_bytes(encode_png(np.zeros((20, 5000, 3), np.uint8)))
    path = _write(tmp_path, ["ok.png,0"] * 5 + ["wide.png,1"])
    model = mmkeras.build_model("image_small", num_classes=2,
                                modalities={"image": {"preprocessing": {"max_pixels": 50_000}}})
    line = (r"line 7: image file .*wide.png' could not be preprocessed: declares 5000 x 20 pixels, more than the "
            r"limit max_pixels=50000$")
    for call in (lambda: model.evaluate(path, verbose=0), lambda: model.predict(path, verbose=0),
                 lambda: mmkeras.evaluation.report(model, path)):  # what `mmkeras evaluate` runs
        with pytest.raises(ValueError, match=line):
            call()
