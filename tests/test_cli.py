"""The command line through subprocesses (``python -m mmkeras``), on real files: train -> report, model,
TensorBoard logs, export; evaluate, predict, inspect; errors name the input and exit 1."""

import csv
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import mmkeras
from mmkeras import cli

REPO = Path(__file__).resolve().parents[1]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def run(*args, cwd, check=True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "mmkeras", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"mmkeras {args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def trained(shared_data_dir, tmp_path_factory):
    """`mmkeras train` on 48 real pairs (+ 16 for validation), labels as digit names."""
    root = tmp_path_factory.mktemp("cli")
    x, y = mmkeras.datasets.av_digits("train", data_dir=shared_data_dir)
    (root / "files").mkdir()
    for name, rows in (("train", range(48)), ("val", range(48, 64))):
        with open(root / f"{name}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["image", "audio", "label"])
            writer.writeheader()
            for i in rows:
                (root / "files" / f"{i}.png").write_bytes(x["image"][i])
                (root / "files" / f"{i}.wav").write_bytes(x["audio"][i])
                writer.writerow({"image": f"files/{i}.png", "audio": f"files/{i}.wav", "label": DIGITS[y[i]]})
    proc = run("train", "train.csv", "--val", "val.csv", "--preset", "av_gated_small", "--epochs", "2",
               "--batch-size", "16", "--class-names", ",".join(DIGITS), "--out", "run", cwd=root)
    return root, proc.stdout


def test_train_writes_model_logs_report_and_export(trained):
    root, stdout = trained
    out = root / "run"
    assert "preset av_gated_small (image+audio), 10 classes (zero, one, two" in stdout
    assert re.search(r"Epoch 2/2\n3/3 - .*accuracy: .*val_accuracy", stdout)  # Keras progress, one line per epoch
    model = keras.saving.load_model(out / "model.keras")
    assert model.class_names() == DIGITS and (out / "best.keras").exists()
    assert not list(out.glob(".tmp-*"))  # the .keras file was written atomically
    assert {p.name for p in (out / "logs").iterdir()} >= {"train", "validation", "images"}
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["num_examples"] == 16 and report["class_names"] == DIGITS
    assert set(report["accuracy_without"]) == {"image", "audio"}
    assert "Classification report: model 'av_gated_small'" in stdout and "true \\ predicted" in stdout
    assert (out / "report" / "confusion_matrix.png").exists()
    assert (out / "saved_model" / "1" / "saved_model.pb").exists()


def test_evaluate_and_its_errors(trained):
    root, _ = trained
    proc = run("evaluate", "run", "val.csv", "--out", "eval", cwd=root)
    assert "16 examples" in proc.stdout and (root / "eval" / "report.txt").exists()
    with open(root / "val.csv") as f:
        lines = f.read().splitlines()
    (root / "bad.csv").write_text("\n".join(lines[:3] + ["files/0.png,files/nope.png,three"] + lines[4:]) + "\n")
    (root / "files" / "nope.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    proc = run("evaluate", "run", "bad.csv", cwd=root, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (f"mmkeras evaluate: error: manifest 'bad.csv' line 4: audio file "
                                                    f"'{root / 'files' / 'nope.png'}' is an image, not a RIFF/WAVE "
                                                    f"file (expected bytes starting with RIFF....WAVE)")


def test_usage_errors(trained, capsys, monkeypatch):
    # In-process: the same main() the console script calls, without a process start per case.
    root, _ = trained
    monkeypatch.chdir(root)
    (root / "note.txt").write_text("hello")
    assert cli.main(["predict", "run", "note.txt"]) == 1
    assert "input file 'note.txt' is text, but the model takes ['image', 'audio']" in capsys.readouterr().err
    assert cli.main(["train", "train.csv", "--preset", "no_such", "--out", "x"]) == 1
    assert "unknown preset 'no_such'; see `mmkeras presets`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "x.csv"])
    assert exit_.value.code == 2 and "the following arguments are required: --preset, --out" in capsys.readouterr().err


def test_predict_groups_files_into_examples(trained):
    root, _ = trained
    proc = run("predict", "run", "files/48.png", "files/48.wav", "files/49.png", "--json", cwd=root)
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [a["inputs"] for a in answers] == [["files/48.png", "files/48.wav"], ["files/49.png"]]
    assert all(a["class"] in DIGITS and len(a["top"]) == 3 for a in answers)


def test_inspect_and_export(trained):
    root, _ = trained
    proc = run("inspect", "run", cwd=root)
    assert "mmkeras model 'av_gated_small'" in proc.stdout and "zero, one, two" in proc.stdout
    proc = run("export", "run/model.keras", "exports", "--version", "7", cwd=root)
    assert (root / "exports" / "7" / "saved_model.pb").exists()
    proc = run("inspect", "exports", cwd=root)
    assert "signature 'serving_default'" in proc.stdout and "in  image: DT_STRING" in proc.stdout


def test_presets_and_console_script(tmp_path):
    proc = run("presets", cwd=tmp_path)
    assert re.search(r"^image_audio_text_small\s+image\+audio\+text\s+Image CNN", proc.stdout, re.M)
    # setup.py installs the `mmkeras` command; it must point at a callable.
    entry = re.search(r'"mmkeras=([\w.]+):(\w+)"', (REPO / "setup.py").read_text())
    assert entry and callable(getattr(importlib.import_module(entry.group(1)), entry.group(2)))


def test_weights_commands(tmp_path):
    listed = run("weights", "list", cwd=tmp_path).stdout
    assert "minilm_l6" in listed and "efficientnet_lite0" in listed
    bad = run("weights", "path", "no_such_weights", cwd=tmp_path, check=False)
    assert bad.returncode != 0 and "no_such_weights" in bad.stdout + bad.stderr
