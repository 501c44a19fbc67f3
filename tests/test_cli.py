"""The command line through subprocesses (``python -m mmkeras``), on real files: train -> report, model,
TensorBoard logs, export; evaluate, predict, inspect; errors name the input and exit 1."""

import csv
import errno
import importlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
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
    proc = run("train", "train.csv", "--val", "val.csv", "--preset", "image_audio_gated_small", "--epochs", "2",
               "--batch-size", "16", "--class-names", ",".join(DIGITS), "--out", "run", cwd=root)
    return root, proc.stdout


def test_train_writes_model_logs_report_and_export(trained):
    root, stdout = trained
    out = root / "run"
    assert "preset image_audio_gated_small (image+audio), 10 classes (zero, one, two" in stdout
    assert re.search(r"Epoch 2/2\n3/3 - .*accuracy: .*val_accuracy", stdout)  # Keras progress, one line per epoch
    model = keras.saving.load_model(out / "model.keras")
    assert model.class_names == DIGITS and (out / "best.keras").exists()
    assert not list(out.glob(".tmp-*"))  # the .keras file was written atomically
    assert {p.name for p in (out / "logs").iterdir()} >= {"train", "validation", "images"}
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["num_examples"] == 16 and report["class_names"] == DIGITS
    assert set(report["accuracy_without"]) == {"image", "audio"}
    assert "Classification report: model 'image_audio_gated_small'" in stdout and "true \\ predicted" in stdout
    assert (out / "report" / "confusion_matrix.png").exists()
    assert (out / "saved_model" / "1" / "saved_model.pb").exists()


def test_evaluate_and_its_errors(trained, capsys, monkeypatch):
    root, _ = trained
    proc = run("evaluate", "run", "val.csv", "--out", "eval", cwd=root)
    assert "16 examples" in proc.stdout and (root / "eval" / "report.txt").exists()
    with open(root / "val.csv") as f:
        lines = f.read().splitlines()
    (root / "bad.csv").write_text("\n".join(lines[:3] + ["files/0.png,files/nope.png,three"] + lines[4:]) + "\n")
    (root / "files" / "nope.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    monkeypatch.chdir(root)  # the error in-process: the same main() as the console script, no second TF start
    assert cli.main(["evaluate", "run", "bad.csv"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (f"mmkeras evaluate: error: manifest 'bad.csv' line 4: audio file "
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
    assert "mmkeras train: error: --preset: Unknown preset 'no_such'. Known presets: audio_small, " \
        in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "x.csv"])
    assert exit_.value.code == 2 and "the following arguments are required: --preset, --out" in capsys.readouterr().err


def test_predict_groups_files_into_examples(trained):
    root, _ = trained
    proc = run("predict", "run", "files/48.png", "files/48.wav", "files/49.png", "--json", cwd=root)
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [a["inputs"] for a in answers] == [["files/48.png", "files/48.wav"], ["files/49.png"]]
    assert all(a["class"] in DIGITS and len(a["top"]) == 3 for a in answers)


def test_inspect_and_export(trained, capsys, monkeypatch):
    root, _ = trained
    monkeypatch.chdir(root)  # inspect in-process: nothing here depends on a fresh process (export runs in one)
    assert cli.main(["inspect", "run"]) == 0
    out = capsys.readouterr().out
    assert "mmkeras model 'image_audio_gated_small'" in out and "zero, one, two" in out
    run("export", "run/model.keras", "exports", "--version", "7", cwd=root)
    assert (root / "exports" / "7" / "saved_model.pb").exists()
    assert cli.main(["inspect", "exports"]) == 0
    out = capsys.readouterr().out
    assert "signature 'serving_default'" in out and "in  image: DT_STRING" in out


@pytest.fixture(scope="module")
def presets_run(tmp_path_factory):
    """`mmkeras presets` in a fresh process with TensorFlow's log level unset (one TensorFlow start for both
    tests that read it)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "mmkeras", "presets"], cwd=tmp_path_factory.mktemp("presets"),
                          env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)


def test_presets_and_console_script(presets_run):
    proc = presets_run
    assert proc.returncode == 0
    assert re.search(r"^image_audio_text_small\s+image\+audio\+text\s+Image CNN", proc.stdout, re.M)
    # setup.py installs the `mmkeras` command; it must point at a callable.
    entry = re.search(r'"mmkeras=([\w.]+):(\w+)"', (REPO / "setup.py").read_text())
    assert entry and callable(getattr(importlib.import_module(entry.group(1)), entry.group(2)))


def test_weights_commands(tmp_path):
    listed = run("weights", "list", cwd=tmp_path).stdout
    assert "minilm_l6" in listed and "efficientnet_lite0" in listed
    bad = run("weights", "path", "no_such_weights", cwd=tmp_path, check=False)
    assert bad.returncode != 0 and "no_such_weights" in bad.stdout + bad.stderr


# ---- tiny synthetic runs (issues 21, 22): 8x8 PNGs, the image_small preset --------------------------------------


def write_manifest(root, name, labels, image_dir="files"):
    """A CSV manifest of 8x8 PNGs whose brightness depends on the label (learnable in a few steps)."""
    rng = np.random.default_rng(len(labels))
    (root / image_dir).mkdir(exist_ok=True)
    with open(root / name, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        for i, label in enumerate(labels):
            level = 40 + 160 * (sorted(set(labels)).index(label) % 2)
            pixels = np.clip(level + rng.integers(-20, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
            (root / image_dir / f"{name}-{i}.png").write_bytes(mmkeras.codecs.encode_png(pixels))
            writer.writerow([f"{image_dir}/{name}-{i}.png", label])
    return root / name


TINY_TRAIN = ["cat", "dog"] * 6 + ["dgo"]  # "dgo": a typo, one row
TINY_VAL = ["cat", "dog"] * 3 + ["bird"]   # "bird": never seen in training


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`mmkeras train` killed after its first epoch, then the same command again (it resumes)."""
    root = tmp_path_factory.mktemp("tiny")
    write_manifest(root, "train.csv", TINY_TRAIN)
    write_manifest(root, "val.csv", TINY_VAL)
    command = ["train", "train.csv", "--val", "val.csv", "--preset", "image_small", "--epochs", "4",
               "--batch-size", "4", "--out", "run", "--no-export"]
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, "PYTHONPATH": str(REPO)}
    killed = subprocess.Popen([sys.executable, "-m", "mmkeras", *command], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (root / "run" / "backup" / "latest.json").exists() and killed.poll() is None:
        assert time.monotonic() < deadline, "no backup after 300 s"
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    backup = json.loads((root / "run" / "backup" / "latest.json").read_text())
    proc = subprocess.run([sys.executable, "-m", "mmkeras", *command], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, backup["epoch"], proc


def test_train_resumes_an_unfinished_run(tiny):
    root, done, proc = tiny
    assert done < 4
    assert f"resuming the unfinished run in run after epoch {done}" in proc.stdout
    assert f"Epoch {done + 1}/4" in proc.stdout and f"Epoch {done}/4" not in proc.stdout
    state = json.loads((root / "run" / "run.json").read_text())
    assert state["finished"] is True and [h["epoch"] for h in state["history"]] == [1, 2, 3, 4]
    assert not (root / "run" / "backup" / "latest.json").exists()  # removed once the run completed


def test_train_restores_the_best_epoch_for_report_and_model(tiny):
    root, _, proc = tiny
    state = json.loads((root / "run" / "run.json").read_text())
    scores = {h["epoch"]: h["val_accuracy"] for h in state["history"]}
    best = max(scores, key=lambda e: (scores[e], -e))
    assert state["best_epoch"] == best and state["best_value"] == scores[best]
    assert f"best epoch: {best} of 4 (val_accuracy {scores[best]:.2%}; the last epoch had {scores[4]:.2%})" \
        in proc.stdout
    report = json.loads((root / "run" / "report" / "report.json").read_text())
    assert report["accuracy"] == pytest.approx(scores[best], abs=1e-6)  # the report is the best epoch's
    x = {"image": [(root / "files" / f"val.csv-{i}.png").read_bytes() for i in range(len(TINY_VAL))]}
    np.testing.assert_allclose(keras.saving.load_model(root / "run" / "model.keras").predict(x, verbose=0),
                               keras.saving.load_model(root / "run" / "best.keras").predict(x, verbose=0), atol=1e-6)


def test_train_warns_about_rare_and_unseen_labels_and_prints_no_tensorflow_noise(tiny):
    _, _, proc = tiny
    lines = proc.stderr.strip().splitlines()
    assert "mmkeras: warning: label 'dgo' is in only 1 training row (manifest 'train.csv' line 14): a typo? " \
           "a class needs at least 3 examples to learn" in lines
    assert "mmkeras: warning: validation label 'bird' (manifest 'val.csv' line 8) is never seen in training: " \
           "the model cannot predict it" in lines
    assert all(line.startswith("mmkeras: warning:") for line in lines), lines  # no cuInit, oneDNN, absl lines


def test_label_errors(tiny, capsys, monkeypatch):
    root, _, _ = tiny
    monkeypatch.chdir(root)
    write_manifest(root, "digits.csv", ["0", "1"] * 3)
    # evaluate: integer labels against a model whose classes are names
    assert cli.main(["evaluate", "run", "digits.csv"]) == 1
    assert ("error: manifest 'digits.csv' line 2: label '0' is an integer, but the classes are names: it would "
            "mean 'bird' (0 = 'bird', 1 = 'cat', 2 = 'dgo', ...; integers index the class names in this order). "
            "Label the rows with the model's class names, or pass --labels-as-indices") in capsys.readouterr().err
    assert cli.main(["evaluate", "run", "digits.csv", "--labels-as-indices"]) == 0
    # train --class-names: an unknown label (a typo) and integer labels are errors, before any training
    assert cli.main(["train", "train.csv", "--preset", "image_small", "--class-names", "cat,dog", "--out", "x"]) == 1
    assert "manifest 'train.csv' line 14: label 'dgo' is not one of the class names ['cat', 'dog']" \
        in capsys.readouterr().err
    assert cli.main(["train", "digits.csv", "--preset", "image_small", "--class-names", "cat,dog", "--out", "x"]) == 1
    assert "label '0' is an integer, but the classes are names: it would mean 'cat'" in capsys.readouterr().err
    assert not (root / "x").exists()


def test_allow_outside(tiny, capsys, monkeypatch):
    root, _, _ = tiny
    (root / "sub").mkdir()
    with open(root / "sub" / "outside.csv", "w") as f:
        f.write("image,label\n" + "".join(f"../files/val.csv-{i}.png,{label}\n" for i, label in enumerate(TINY_VAL)))
    monkeypatch.chdir(root)
    assert cli.main(["evaluate", "run", "sub/outside.csv"]) == 1
    assert "allow_outside" in capsys.readouterr().err
    calls = []
    original = mmkeras.data.from_manifest
    monkeypatch.setattr(mmkeras.data, "from_manifest", lambda *a, **k: calls.append(k) or original(*a, **k))
    assert cli.main(["evaluate", "run", "sub/outside.csv", "--allow-outside"]) == 0
    assert calls and all(k["allow_outside"] is True for k in calls)
    assert "7 examples" in capsys.readouterr().out


def test_expected_failures_are_one_line_and_debug_shows_the_traceback(tiny, capsys, monkeypatch):
    import tensorflow as tf

    root, _, _ = tiny
    monkeypatch.chdir(root)
    (root / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    assert cli.main(["predict", "broken.keras", "files/val.csv-0.png"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model 'broken.keras' is not a .keras file (not a zip archive" in err
    full = tf.errors.ResourceExhaustedError(None, None, "saved_model/1/variables/variables.data-00000-of-00001; "
                                            "No space left on device\n" + "\tat frame\n" * 50)
    for failure, expected in ((OSError(errno.ENOSPC, "No space left on device", "exports/1/saved_model.pb"),
                               "error: the disk is full writing 'exports/1/saved_model.pb'"),
                              (full, "error: the disk is full (saved_model/1/variables/"),
                              (PermissionError(errno.EACCES, "Permission denied", "/exports"),
                               "error: permission denied '/exports'")):
        def export(*args, _failure=failure, **kwargs):
            raise _failure

        monkeypatch.setattr(mmkeras, "export_saved_model", export)
        assert cli.main(["export", "run", "exports"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
        with pytest.raises(type(failure)):
            cli.main(["export", "run", "exports", "--debug"])


def test_train_refuses_to_overwrite_a_finished_run(tiny, capsys, monkeypatch):
    # Last of the tests on `tiny`: it replaces the run.
    root, _, _ = tiny
    monkeypatch.chdir(root)
    before = (root / "run" / "model.keras").read_bytes()
    args = ["train", "train.csv", "--preset", "image_small", "--epochs", "1", "--out", "run", "--no-export"]
    assert cli.main(args) == 1
    assert "error: --out 'run' holds a finished run (4 epochs, model.keras); pass --overwrite to replace it" \
        in capsys.readouterr().err
    assert (root / "run" / "model.keras").read_bytes() == before
    # --overwrite starts again; the training flags reach the preset.
    assert cli.main(args + ["--overwrite", "--batch-size", "8", "--modality-dropout", "0.25", "--augment"]) == 0
    config = keras.saving.load_model(root / "run" / "model.keras").mm_config
    assert config["modality_dropout"] == 0.25 and config["modalities"]["image"]["augment"] == {
        "translate": 0.08, "rotate": 0.03}
    assert [h["epoch"] for h in json.loads((root / "run" / "run.json").read_text())["history"]] == [1]


def test_warm_up_longer_than_the_run_is_named(capsys):
    model = mmkeras.build_model("image_small", num_classes=2, training={"warmup_steps": 100, "batch_size": 4},
                                compile=False)
    cli._warn_about_warmup(model, rows=13, epochs=2)
    assert ("warning: the learning-rate warm-up (100 steps) is longer than the run (2 epochs x 4 steps = 8)"
            in capsys.readouterr().err)
    cli._warn_about_warmup(model, rows=13, epochs=50)
    assert capsys.readouterr().err == ""


def test_help_is_fast_shows_defaults_and_imports_no_tensorflow(tmp_path):
    code = ("import sys\nfrom mmkeras import cli\ntry:\n    cli.main(['train', '--help'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "--epochs EPOCHS       epochs to train (default: 10)" in proc.stdout
    assert "--modality-dropout P" in proc.stdout and "--augment" in proc.stdout and "--allow-outside" in proc.stdout


def test_commands_print_no_tensorflow_start_up_lines(presets_run):
    proc = presets_run
    assert proc.returncode == 0 and proc.stderr == ""
    # Only library presets: the benchmarks' (av_*, reference_*) live in benchmarks/presets.py.
    assert re.search(r"^image_audio_gated_small\s+image\+audio\s+", proc.stdout, re.M)
    assert "av_gated_small" not in proc.stdout and "reference_base" not in proc.stdout


def test_predict_names_the_file_a_graph_limit_refuses(tiny, tmp_path, capsys, monkeypatch):
    """An image over the default max_pixels (a graph check, not a size check) is named by its file."""
    root, _, _ = tiny
    wide = tmp_path / "wide.png"
    wide.write_bytes(mmkeras.codecs.encode_png(np.zeros((1100, 16_000, 3), np.uint8)))
    monkeypatch.chdir(root)  # in-process: an unexpected exception (a traceback) would fail the test itself
    assert cli.main(["predict", str(root / "run"), str(root / "files" / "train.csv-0.png"), str(wide)]) == 1
    said = capsys.readouterr()
    assert f"{wide}: declares 16000 x 1100 pixels, more than the limit max_pixels" in said.err
    assert "example 1" not in said.err + said.out
