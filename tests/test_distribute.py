"""Unit tests of mmkeras.distribute that need no extra process or device setup."""

import json
import os

import pytest
import tensorflow as tf

import mmkeras.distribute as dist
from mmkeras.distribute import cluster, keras_fixes, launch


@pytest.fixture
def tf_config(monkeypatch):
    def set_config(num_workers, index, chief=False):
        cluster_spec = {"worker": [f"127.0.0.1:{1000 + i}" for i in range(num_workers)]}
        if chief:
            cluster_spec["chief"] = ["127.0.0.1:999"]
        task = {"type": "chief", "index": 0} if index == "chief" else {"type": "worker", "index": index}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster_spec, "task": task}))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    return set_config


def test_auto_without_cluster_or_devices_is_the_default_strategy(tf_config):
    assert dist.strategy("auto") is tf.distribute.get_strategy()
    assert dist.is_chief() and not dist.is_multi_worker()


def test_unknown_kind_and_multi_worker_without_tf_config_fail_clearly(tf_config):
    with pytest.raises(ValueError, match="unknown strategy kind"):
        dist.strategy("horovod")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        dist.strategy("multi_worker")


def test_chief_is_worker_0_or_the_chief_task(tf_config):
    tf_config(2, 0)
    assert cluster.num_tasks() == 2 and dist.is_chief()
    tf_config(2, 1)
    assert not dist.is_chief() and dist.task() == ("worker", 1)
    tf_config(2, 0, chief=True)
    assert cluster.num_tasks() == 3 and not dist.is_chief()
    tf_config(2, "chief", chief=True)
    assert dist.is_chief()


def test_bad_tf_config_is_reported(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        dist.tf_config()


def test_global_batch_splits_evenly():
    strategy = tf.distribute.get_strategy()
    assert dist.per_replica_batch_size(64, strategy) == 64
    with pytest.raises(ValueError, match="does not split evenly"):
        dist.per_replica_batch_size(7, type("S", (), {"num_replicas_in_sync": 2})())


def test_sharding_policies_are_explicit():
    ds = tf.data.Dataset.range(8).batch(4)
    assert dist.with_sharding(ds, "file").options().experimental_distribute.auto_shard_policy == \
        tf.data.experimental.AutoShardPolicy.FILE
    assert dist.with_sharding(ds).options().experimental_distribute.auto_shard_policy == \
        tf.data.experimental.AutoShardPolicy.DATA
    with pytest.raises(ValueError, match="unknown shard policy"):
        dist.with_sharding(ds, "rows")
    assert dist.shuffle_seed(None) is None and dist.shuffle_seed(3) == 3  # single worker: untouched


def test_non_chief_outputs_go_to_temp_dirs(tf_config, tmp_path):
    tf_config(2, 1)
    log_dir = dist.write_dir(str(tmp_path / "logs"))
    ckpt = dist.write_path(str(tmp_path / "best.keras"))
    assert not log_dir.startswith(str(tmp_path)) and log_dir.endswith("logs")
    assert not ckpt.startswith(str(tmp_path)) and ckpt.endswith("best.keras")
    dist.cleanup()
    assert not os.path.exists(os.path.dirname(ckpt))
    tf_config(2, 0)
    assert dist.write_dir(str(tmp_path / "logs")) == str(tmp_path / "logs")


def test_local_tf_configs_use_distinct_loopback_ports():
    configs = dist.local_tf_configs(3)
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]


def test_fn_spec_needs_an_importable_function():
    assert launch._fn_spec(dist.strategy) == "mmkeras.distribute.strategy:strategy"
    with pytest.raises(ValueError, match="cannot be imported"):
        launch._fn_spec(lambda: None)


def test_keras_fix_gate():
    assert keras_fixes.keras_needs_fixes("3.15.1") and keras_fixes.keras_needs_fixes("3.0.0")
    assert not keras_fixes.keras_needs_fixes("3.16.0") and not keras_fixes.keras_needs_fixes("2.15.0")


def test_launcher_kills_the_other_workers_when_one_fails(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import json, os, time\n"
                      "def main():\n"
                      "    index = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
                      "    if index == 1:\n"
                      "        raise RuntimeError('worker 1 fails on purpose')\n"
                      "    time.sleep(300)\n")
    with pytest.raises(dist.WorkerError, match="worker 1 fails on purpose") as info:
        dist.launch_local(2, f"{script}:main", timeout=120)
    codes = [r.returncode for r in info.value.results]
    assert codes[1] == 1 and codes[0] != 0  # worker 0 was killed, not left sleeping


def test_prepare_callbacks_adds_backup_and_rejects_the_keras_one(tmp_path):
    import keras

    callbacks = dist.prepare_callbacks([keras.callbacks.TensorBoard(str(tmp_path / "logs"))],
                                       backup_dir=str(tmp_path / "backup"))
    # the backup goes last: at epoch end it records the state the other callbacks have just updated
    assert isinstance(callbacks[-1], dist.BackupAndRestore) and callbacks[0].log_dir == str(tmp_path / "logs")
    assert dist.prepare_callbacks([]) == []  # single worker, no backup asked for
    with pytest.raises(ValueError, match="not multi-worker safe"):
        dist.prepare_callbacks([keras.callbacks.BackupAndRestore(str(tmp_path / "b"))])
