"""Real multi-worker training: 2 processes, MultiWorkerMirroredStrategy, TF_CONFIG on 127.0.0.1.

- both workers exit 0 with identical weights, equal to a 1-process run with the
  same global batch; the chief's SavedModel serves raw bytes; only the chief
  keeps logs/checkpoints/exports; mixed_float16 trains under MWMS;
- a worker SIGKILLed mid-epoch: the restarted job resumes from the last backup
  (no lost epochs) and ends with the uninterrupted run's weights.
"""

import json
import os
import signal
import sys
import time

import numpy as np
import pytest

import mmkeras.distribute

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "distribute_workers"))

import common  # noqa: E402

TRAIN = os.path.join(HERE, "distribute_workers", "train.py") + ":train"
EPOCHS = 3
TIMEOUT = 420  # per job; generous because CI machines are shared
pytestmark = pytest.mark.multiworker


@pytest.fixture(scope="module")
def init_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("init") / "init.weights.h5")
    common.build(mixed_precision="float32").save_weights(path)
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, init_path):
    out = str(tmp_path_factory.mktemp("mwms"))
    results = mmkeras.distribute.launch_local(2, TRAIN, kwargs=dict(out_dir=out, init_path=init_path, epochs=EPOCHS,
                                                                     export=True, mixed_precision=True, logs=True,
                                                                     batchnorm=True),
                                              timeout=TIMEOUT, threads_per_worker=1)
    return out, results


def _max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def test_two_workers_train_identically_and_match_one_process(uninterrupted, init_path):
    _, (chief, other) = uninterrupted
    assert chief["chief"] and not other["chief"]
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["mirrored"] == "MirroredVariable"
    assert chief["epochs_run"] == other["epochs_run"] == list(range(EPOCHS))
    assert _max_diff(chief["weights"], other["weights"]) == 0.0
    reference = common.fit_reference(init_path, EPOCHS)
    assert _max_diff(chief["weights"], [np.asarray(w) for w in reference.get_weights()]) < 1e-5
    (_, _), (xt, yt) = common.data()
    np.testing.assert_allclose(chief["predict"], reference.predict(xt, verbose=0), atol=1e-5)
    assert chief["evaluate"]["loss"] == pytest.approx(other["evaluate"]["loss"], abs=1e-6)


def test_chief_export_serves_raw_bytes(uninterrupted):
    import tensorflow as tf

    out, (chief, other) = uninterrupted
    assert other["export"] is None and chief["export"] == os.path.join(out, "export", "1")
    assert sorted(os.listdir(os.path.join(out, "export"))) == ["1"]  # the non-chief wrote elsewhere
    serve = tf.saved_model.load(chief["export"]).signatures["serving_default"]
    (_, _), (xt, _) = common.data()
    outputs = serve(image=tf.constant(list(xt["image"])), audio=tf.constant(list(xt["audio"])))
    np.testing.assert_allclose(outputs["scores"].numpy(), chief["predict"], atol=1e-5)


def test_only_chief_writes_logs_and_checkpoints(uninterrupted):
    out, (chief, other) = uninterrupted
    logs = os.path.join(out, "logs")
    assert os.path.exists(os.path.join(logs, "best.keras")) and os.path.isdir(os.path.join(logs, "train"))
    assert not chief["temp_dirs"] and other["temp_dirs"]  # the non-chief's outputs went to temp dirs ...
    assert not any(os.path.exists(d) for d in other["temp_dirs"])  # ... removed when it exited
    assert not os.path.exists(os.path.join(out, "backup", "latest.json"))  # backup deleted after a full fit


def test_mixed_float16_under_multi_worker(uninterrupted):
    _, results = uninterrupted
    for r in results:
        mp = r["mixed_float16"]
        assert mp["optimizer"] == "LossScaleOptimizer" and mp["variable_dtype"] == "float32"
        assert mp["output_dtype"] == "float32" and 0.0 < mp["loss"] < 5.0
    assert results[0]["mixed_float16"]["loss"] == results[1]["mixed_float16"]["loss"]


def test_batchnorm_statistics_are_synchronised_across_workers(uninterrupted):
    _, (chief, other) = uninterrupted
    on_chief, on_other = chief["batchnorm"], other["batchnorm"]
    assert len(on_chief["moving_statistics"]) == 6  # 3 BatchNorm layers, mean and variance each
    assert _max_diff(on_chief["moving_statistics"], on_other["moving_statistics"]) == 0.0
    assert _max_diff(on_chief["weights"], on_other["weights"]) == 0.0
    # The statistics are those of the global batch: a one-process run with the same batch.
    reference = common.fit_reference(None, 2, preset=common.bn_preset())
    assert _max_diff(on_chief["moving_statistics"], common.moving_statistics(reference)) < 1e-4
    # Without synchronisation each worker keeps the statistics of its own shard (what the chief exported before).
    apart = _max_diff(chief["batchnorm_unsynchronized"]["moving_statistics"],
                      other["batchnorm_unsynchronized"]["moving_statistics"])
    assert apart > 1e-4, apart


def test_worker_killed_mid_epoch_resumes_from_backup(tmp_path, init_path, uninterrupted):
    out, marker = str(tmp_path), str(tmp_path / "stalled")
    kwargs = dict(out_dir=out, init_path=init_path, epochs=EPOCHS)
    job = mmkeras.distribute.start_local(2, TRAIN, kwargs={**kwargs, "kill_at": {"worker": 1, "epoch": 1, "batch": 2,
                                                                                 "marker": marker}},
                                         threads_per_worker=1)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(marker):  # worker 1 is now inside epoch 1 (0-based), before batch 2
            assert time.monotonic() < deadline and all(p.poll() is None for p in job.processes), \
                "\n".join(open(p).read()[-2000:] for p in job.log_paths)
            time.sleep(0.2)
        job.kill(1, signal.SIGKILL)
        results = job.wait(timeout=60, check=False)  # fail-fast: the chief is killed too
    finally:
        job.kill_all()
    assert results[1].returncode == -signal.SIGKILL
    with open(os.path.join(out, "backup", "latest.json")) as f:
        assert json.load(f)["epoch"] == 1  # epoch 0 was backed up; epoch 1 was interrupted

    chief, other = mmkeras.distribute.launch_local(2, TRAIN, kwargs=kwargs, timeout=TIMEOUT,
                                                              threads_per_worker=1)  # the restart
    assert chief["restored_epoch"] == other["restored_epoch"] == 1
    assert chief["epochs_run"] == other["epochs_run"] == [1, 2]  # resumed at the interrupted epoch, none lost
    _, (reference, _) = uninterrupted
    assert _max_diff(chief["weights"], reference["weights"]) < 1e-6
    assert _max_diff(chief["weights"], other["weights"]) == 0.0
