"""`mmkeras tune` / mmkeras.tune: the search space, baselines, the end-to-end CLI run on a constructed case
whose audio is pure noise (fusion must not be recommended), errors, and resume after a real kill."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import mmkeras
from mmkeras import cli
from mmkeras.codecs import encode_png, encode_wav
from mmkeras.evaluation.features import single_modality_features
from mmkeras.presets.custom import single_modality_preset
from mmkeras.tuning.space import SEARCH_SPACE, overrides, scale_augment

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}

# Tiny towers on 8x8 images and 0.25 s clips: a trial trains in seconds.
TINY_PRESET = {
    "name": "tiny_av",
    "modalities": {
        "image": {"preprocessing": {"height": 8, "width": 8, "channels": 3, "resize": "plain", "normalize": "unit"},
                  "tower": {"type": "image/cnn", "filters": [8], "dim": 16}},
        "audio": {"preprocessing": {"sample_rate": 8000, "duration_s": 0.25, "frame_length_ms": 32.0,
                                    "frame_step_ms": 16.0, "n_mels": 8},
                  "tower": {"type": "audio/cnn", "filters": [8], "dim": 16}},
    },
    "fusion": {"type": "fusion/concat", "dim": 16, "dropout": 0.1},
    "training": {"learning_rate": 0.01, "batch_size": 8},
}
FAST_SPACE = json.dumps({"fusion": "fusion/concat", "tower_scale": 1.0, "learning_rate": 0.01})


def write_manifest(root, name, n, seed, modalities=("image", "audio")):
    """Labels cat/dog: the image's brightness shows the label, the audio is white noise (no information)."""
    rng = np.random.default_rng(seed)
    (root / "files").mkdir(exist_ok=True)
    labels = np.arange(n) % 2
    rng.shuffle(labels)
    with open(root / name, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*modalities, "label"])
        writer.writeheader()
        for i, label in enumerate(labels):
            row = {"label": ("cat", "dog")[label]}
            if "image" in modalities:
                pixels = np.clip(40 + 160 * label + rng.integers(-20, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
                (root / "files" / f"{name}-{i}.png").write_bytes(encode_png(pixels))
                row["image"] = f"files/{name}-{i}.png"
            if "audio" in modalities:
                noise = rng.normal(0.0, 0.3, 2000).astype(np.float32)
                (root / "files" / f"{name}-{i}.wav").write_bytes(encode_wav(noise, 8000))
                row["audio"] = f"files/{name}-{i}.wav"
            writer.writerow(row)
    return root / name


def image_only_setup(root, n_train, n_val):
    """An image-only tiny preset (fusion is not applicable) and its train/val manifests under ``root``."""
    preset = {**TINY_PRESET, "modalities": {"image": TINY_PRESET["modalities"]["image"]}}
    (root / "tiny.json").write_text(json.dumps(preset))
    write_manifest(root, "train.csv", n_train, 0, modalities=("image",))
    write_manifest(root, "val.csv", n_val, 1, modalities=("image",))


def tune_command(out, *extra, preset="tiny.json", export=False):
    return ["tune", "train.csv", "--val", "val.csv", "--preset", preset, "--out", out, "--max-epochs", "1",
            "--space", FAST_SPACE, *extra] + ([] if export else ["--no-export"])


def run_cli(args, cwd, check=True):
    proc = subprocess.run([sys.executable, "-m", "mmkeras", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"mmkeras {args} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def trial_ids(path, search):
    with open(path, newline="") as f:
        return [row["trial_id"] for row in csv.DictReader(f) if row["search"] == search]


# ---- the search space and the baselines (no training) ------------------------------------------------------------


def test_every_search_space_point_builds_a_model():
    kt = pytest.importorskip("keras_tuner")
    preset = mmkeras.get_preset("image_audio_small")
    hp = kt.HyperParameters()
    from mmkeras.tuning.space import declare

    declare(hp, preset)
    assert [h.name for h in hp.space] == list(SEARCH_SPACE)  # two modalities: every dimension
    assert hp.values["fusion"] == "fusion/concat" and hp.values["learning_rate"] == pytest.approx(1e-3)
    corner = {"fusion": "fusion/lmf", "tower_scale": 0.5, "learning_rate": 1e-4, "weight_decay": 0.0,
              "dropout": 0.5, "modality_dropout": 0.5, "augment_strength": 2.0}
    from mmkeras.presets.presets import DEFAULT_AUGMENT

    model = mmkeras.build_model(preset, num_classes=3, preprocessor=False, **overrides(preset, corner,
                                                                                        DEFAULT_AUGMENT))
    config = model.mm_config
    assert config["fusion"]["type"] == "fusion/lmf" and config["fusion"]["dropout"] == 0.5
    assert config["modalities"]["image"]["tower"]["filters"] == [16, 32, 48]  # 0.5 x [32, 64, 96]
    assert config["modalities"]["image"]["augment"] == {"translate": 0.16, "rotate": 0.06}
    assert config["training"]["learning_rate"] == 1e-4 and config["modality_dropout"] == 0.5
    assert scale_augment({"time_masks": 2, "time_mask_width": 6, "seed": 3}, 0.5) == {
        "time_masks": 1, "time_mask_width": 3, "seed": 3}
    assert scale_augment({"translate": 0.1}, 0.0) is None
    one = kt.HyperParameters()
    declare(one, mmkeras.get_preset("image_small"), space={"learning_rate": [1e-3, 3e-3]})
    assert "fusion" not in one.values and "modality_dropout" not in one.values  # nothing to fuse
    with pytest.raises(ValueError, match=r"unknown dimension\(s\) \['lr'\]; known: \["):
        declare(kt.HyperParameters(), preset, space={"lr": 1e-3})


def test_single_modality_baseline_is_the_preset_with_one_modality():
    preset = mmkeras.get_preset("image_audio_gated_small")
    image = single_modality_preset(preset, "image")
    assert list(image["modalities"]) == ["image"] and image["modalities"]["image"] == preset["modalities"]["image"]
    assert image["fusion"] == {"type": "fusion/concat", "dim": 96, "dropout": 0.1} and "modality_dropout" not in image
    model = mmkeras.build_model(image, num_classes=2, preprocessor=False)
    features = {"image": np.zeros((2, 32, 32, 3), "float32"), "audio": np.zeros((2, 61, 40), "float32"),
                "present": np.array([[1.0, 0.0], [1.0, 1.0]], "float32")}
    cut = single_modality_features(features, ["image", "audio"], "image")
    assert sorted(cut) == ["image", "present"] and cut["present"].tolist() == [[1.0], [1.0]]
    assert model.predict(cut, verbose=0).shape == (2, 2)
    with pytest.raises(ValueError, match="has no modality 'text'"):
        single_modality_preset(preset, "text")


def test_report_opens_with_the_verdict_for_baselines_passed_to_it():
    fused = mmkeras.build_model(TINY_PRESET, class_names=["cat", "dog"], preprocessor=False)
    image = mmkeras.build_model(single_modality_preset(TINY_PRESET, "image"), class_names=["cat", "dog"],
                                preprocessor=False)
    audio = mmkeras.build_model(single_modality_preset(TINY_PRESET, "audio"), class_names=["cat", "dog"],
                                preprocessor=False)
    rng = np.random.default_rng(0)
    features = {"image": rng.random((40, 8, 8, 3), "float32"), "audio": rng.random((40, 14, 8), "float32"),
                "present": np.ones((40, 2), "float32")}
    y = np.arange(40) % 2
    report = mmkeras.evaluation.report(fused, features, y, baselines={"image": image, "audio": audio})
    expected = {name: float(np.mean(model.predict(f, verbose=0).argmax(-1) == y)) for name, model, f in (
        ("fused", fused, features), ("image", image, single_modality_features(features, ["image", "audio"], "image")),
        ("audio", audio, single_modality_features(features, ["image", "audio"], "audio")))}
    assert report.verdict.accuracies == pytest.approx(expected)
    assert report.to_text().startswith(report.verdict.line() + "\n\nmodel ")
    assert report.to_dict()["verdict"]["best_single_modality"] == report.verdict.best_single_modality
    with pytest.raises(ValueError, match=r"baselines\['audio'\] must be a model of audio alone"):
        mmkeras.evaluation.report(fused, features, y, baselines={"audio": image})


def test_budget_stops_the_search_and_counts_time_spent_before_a_restart(tmp_path):
    kt = pytest.importorskip("keras_tuner")
    from mmkeras.tuning.search import make_oracle

    def oracle(algorithm):
        made = make_oracle(algorithm, max_epochs=2, seed=0, budget_seconds=3600.0, trial_limit=None)
        made._set_project_dir(str(tmp_path), algorithm)
        hp = kt.HyperParameters()
        hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=2e-3)
        made.update_space(hp)
        return made

    for algorithm in ("hyperband", "bayesian"):
        first = oracle(algorithm)
        trial = first.create_trial("tuner0")
        assert trial.status == "RUNNING" and trial.hyperparameters.values["learning_rate"] == 2e-3  # the preset
        first.end_trial(trial)
        first.spent_before = 3600.0  # as if an earlier run had used the whole share
        assert first.create_trial("tuner0").status == "STOPPED"
        again = oracle(algorithm)
        again.set_state(first.get_state())
        assert again.spent() >= 3600.0 and again.exhausted()


# ---- the CLI end to end ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """`mmkeras tune` on image (informative) + audio (pure noise), one trial per search, with --test."""
    root = tmp_path_factory.mktemp("tune")
    (root / "tiny.json").write_text(json.dumps(TINY_PRESET))
    write_manifest(root, "train.csv", 48, 0)
    write_manifest(root, "val.csv", 120, 1)
    write_manifest(root, "test.csv", 40, 2)
    start = time.perf_counter()
    proc = run_cli(tune_command("run", "--max-trials", "1", "--budget-minutes", "10", "--test", "test.csv",
                                export=True), root)
    return root, proc, time.perf_counter() - start


@pytest.mark.slow
def test_tune_cli_writes_trials_verdict_hparams_and_model(tuned):
    root, proc, _ = tuned
    out = root / "run"
    assert "search 1/3: fused, budget 3.3 min (hyperband)" in proc.stdout
    assert trial_ids(out / "trials.csv", "fused") == ["0000"] and trial_ids(out / "trials.csv", "image") == ["0000"]
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["search"] for r in rows] == ["fused", "image", "audio"]
    assert {"learning_rate", "dropout", "modality_dropout", "augment_strength", "score", "status"} <= set(rows[0])
    assert all(r["status"] == "COMPLETED" for r in rows)
    # The first trial of every search is the preset itself (no augmentation, dropout 0.1, no modality dropout).
    assert (rows[0]["dropout"], rows[0]["augment_strength"], rows[0]["modality_dropout"]) == ("0.1", "0.0", "0.0")
    # The noise case: the audio carries nothing, so fusion must not be recommended over image alone.
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["best_single_modality"] == "image" and verdict["fusion_beats_best_single"] is False
    assert verdict["accuracies"]["image"] > 0.9 and verdict["accuracies"]["audio"] < 0.75
    assert proc.stdout.count("fusion does not beat the best single modality (image, ") == 1
    assert "consider the image-only model" in proc.stdout
    summary = (out / "summary.md").read_text()
    assert summary.startswith("**fusion does not beat the best single modality (image, ")
    tune_json = json.loads((out / "tune.json").read_text())
    assert tune_json["seed"] == 0 and tune_json["budget_share_seconds"] == pytest.approx(200.0)
    assert set(tune_json["test_accuracy"]) == {"fused", "image", "audio"}
    assert "test accuracy (once, after selection): fused " in proc.stdout
    # HParams: KerasTuner's per-trial summaries and the experiment written beside them.
    events = [p for p in (out / "logs" / "fused").rglob("events.out.tfevents.*")]
    assert any(b"hparams" in p.read_bytes() for p in events if p.parent == out / "logs" / "fused")
    assert any(b"hparams" in p.read_bytes() for p in events if "execution0" in str(p))
    model = keras.saving.load_model(out / "model.keras")
    assert model.class_names == ["cat", "dog"] and model.modalities == ["image", "audio"]
    assert (out / "baselines" / "image.keras").exists() and (out / "report" / "report.json").exists()
    assert (out / "saved_model" / "1" / "saved_model.pb").exists()


def test_tune_errors_name_the_input(tmp_path, capsys, monkeypatch):
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_PRESET))
    write_manifest(tmp_path, "train.csv", 4, 0)
    write_manifest(tmp_path, "val.csv", 4, 1)
    monkeypatch.chdir(tmp_path)
    assert cli.main(tune_command("run", preset="no_such_preset")) == 1
    err = capsys.readouterr().err
    assert "--preset: Unknown preset 'no_such_preset'. Known presets: " in err and "image_audio_small" in err
    assert cli.main(tune_command("run", "--test", "missing.csv")) == 1
    assert "--test manifest 'missing.csv' does not exist" in capsys.readouterr().err
    assert cli.main(tune_command("run", "--budget-minutes", "0")) == 1
    assert "budget_minutes must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_python_api_bayesian_on_raw_arrays(tmp_path):
    """mmkeras.tune on (x, y) pairs with Bayesian optimisation; the classes are inferred from the labels."""
    rng = np.random.default_rng(0)

    def pairs(n):
        y = np.arange(n) % 2
        images = [encode_png(np.clip(40 + 160 * c + rng.integers(-20, 20, (8, 8, 3)), 0, 255).astype(np.uint8))
                  for c in y]
        return {"image": np.array(images, dtype=object)}, y

    preset = {**TINY_PRESET, "modalities": {"image": TINY_PRESET["modalities"]["image"]}}
    result = mmkeras.tune(pairs(24), pairs(12), preset, str(tmp_path / "run"), algorithm="bayesian",
                          budget_minutes=None, max_trials=2, max_epochs=1, export=False, log=None,
                          space={"tower_scale": 1.0})
    assert result.verdict is None and result.summary["verdict_line"].startswith("fusion is not applicable")
    assert result.summary["algorithm"] == "bayesian" and result.summary["searches"]["image"]["trials"] == 2
    assert result.model.class_names == ["0", "1"] or result.model.heads[0]["units"] == 2
    assert trial_ids(tmp_path / "run" / "trials.csv", "image") == ["0", "1"]  # Bayesian ids: max_trials digits


# ---- resume after a real kill (one modality: fusion is not applicable) -------------------------------------------


@pytest.mark.slow
def test_killed_tune_resumes_without_losing_or_repeating_a_trial(tmp_path):
    image_only_setup(tmp_path, 32, 16)
    command = tune_command("run", "--max-trials", "2", "--budget-minutes", "20")
    killed = subprocess.Popen([sys.executable, "-m", "mmkeras", *command], cwd=tmp_path, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = tmp_path / "run" / "image" / "trial_0001"  # created when trial 0001 starts (0000 has ended)
    deadline = time.monotonic() + 300
    while not second.exists() and killed.poll() is None:
        assert time.monotonic() < deadline, "the second trial did not start in 300 s"
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    assert trial_ids(tmp_path / "run" / "trials.csv", "image") == ["0000"]  # killed during trial 0001
    proc = run_cli(command, tmp_path)
    assert "fusion is not applicable: the data has one modality (image)" in proc.stdout
    # 0001 was run again under its id (KerasTuner's retry of an interrupted trial), nothing more.
    assert trial_ids(tmp_path / "run" / "trials.csv", "image") == ["0000", "0001"]
    oracle = json.loads((tmp_path / "run" / "image" / "oracle.json").read_text())
    assert oracle["start_order"] == ["0000", "0001"] and not oracle["ongoing_trials"]
    assert json.loads((tmp_path / "run" / "image" / "trial_0001" / "trial.json").read_text())["status"] == "COMPLETED"
    assert not (tmp_path / "run" / "verdict.json").exists()
    assert json.loads((tmp_path / "run" / "tune.json").read_text())["searches"]["image"]["trials"] == 2


# A search's oracle saves its state again, and the process is killed (SIGKILL) mid-write: after the
# new content is written, before it replaces the file (the fsync between the two).
KILLED_SAVE = """
import os, signal, sys
import keras_tuner as kt
import mmkeras.tuning.search  # installs mmkeras.tuning.state_files
oracle = kt.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=1, seed=int(sys.argv[2]))
oracle._set_project_dir(sys.argv[1], "search")
if sys.argv[3] == "killed":
    os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
oracle.save()
"""


def test_a_kill_while_keras_tuner_saves_its_state_keeps_the_last_complete_file(tmp_path):
    """The CI failure this fixes: a tune killed while KerasTuner wrote tuner0.json could not be resumed
    (KerasTuner opens the file for writing, which empties it, then writes)."""
    def save(seed, which):
        return subprocess.run([sys.executable, "-c", KILLED_SAVE, str(tmp_path), str(seed), which], env=ENV,
                              timeout=300)

    assert save(3, "first").returncode == 0
    assert save(7, "killed").returncode == -signal.SIGKILL
    state = json.loads((tmp_path / "search" / "oracle.json").read_text())
    assert state["seed"] == 3  # the previous save, whole
    (temporary,) = [p.name for p in (tmp_path / "search").iterdir() if p.name.startswith(".tmp-mmkeras-")]
    assert temporary.endswith("-oracle.json")  # the killed write's; the next save removes it


def test_a_cut_short_keras_tuner_state_file_is_named_in_the_error(tmp_path):
    from keras_tuner.src import utils as kt_utils

    import mmkeras.tuning.search  # noqa: F401  (installs mmkeras.tuning.state_files)

    (tmp_path / "tuner0.json").write_text('{"trials": [')
    with pytest.raises(ValueError, match=r"KerasTuner state file '.*tuner0\.json' is not valid JSON .* remove "
                                         r"that search's directory"):
        kt_utils.load_json(str(tmp_path / "tuner0.json"))


@pytest.mark.slow
def test_train_with_baselines_reports_the_verdict_on_the_noise_case(tmp_path):
    """`mmkeras train --baselines`: each modality alone under the same settings, and the paired verdict."""
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_PRESET))
    write_manifest(tmp_path, "train.csv", 48, 0)
    write_manifest(tmp_path, "val.csv", 120, 1)
    proc = run_cli(["train", "train.csv", "--val", "val.csv", "--preset", "tiny.json", "--out", "run", "--epochs",
                    "3", "--baselines", "--no-export", "--progress", "0"], tmp_path)
    out = tmp_path / "run"
    for m in ("image", "audio"):
        baseline = keras.saving.load_model(out / "baselines" / m / "model.keras")
        assert baseline.modalities == [m] and baseline.class_names == ["cat", "dog"]
        assert json.loads((out / "baselines" / m / "run.json").read_text())["finished"] is True
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["best_single_modality"] == "image" and verdict["fusion_beats_best_single"] is False
    assert verdict["accuracies"]["audio"] < 0.75 < verdict["accuracies"]["image"]
    report = (out / "report" / "report.txt").read_text()
    assert report.startswith("fusion does not beat the best single modality (image, ")
    assert "consider the image-only model" in proc.stdout
    assert json.loads((out / "run.json").read_text())["finished"] is True
