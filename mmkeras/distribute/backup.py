"""Fault tolerance: an atomic, multi-worker aware BackupAndRestore, and callback wiring.

A multi-worker job cannot survive the loss of a worker (the collectives wait
for it), so the recovery model is: the job fails as a whole, the cluster
manager (Kubernetes, a launcher, :func:`mmkeras.distribute.launch_local`)
restarts every worker, and training resumes from the last backup.

Compared with ``keras.callbacks.BackupAndRestore`` this one
- writes the weights (with the optimizer state) and the epoch counter as one
  atomic unit (temporary file + ``os.replace`` of a small ``latest.json``), so
  a worker killed while saving leaves the previous backup intact;
- lets every worker save (saving may be collective) but keeps only the chief's
  backup; on restart every worker restores from the chief's ``backup_dir``,
  which must therefore be on storage all workers see (NFS, a Kubernetes
  ReadWriteMany volume, GCS ``gs://`` is not supported by ``os.replace``).
"""

import json
import os
import uuid

import keras

from mmkeras.distribute import cluster, outputs

LATEST = "latest.json"


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up the training state every epoch; a restarted ``fit`` resumes from it.

    Args:
        backup_dir: str. Directory of the chief's backup (shared by all workers).
        delete_checkpoint: bool. Remove the backup when ``fit`` completes.
        keep: int. Backups kept (the newest ``keep``).
        strategy: the strategy (default: the model's).

    Example:
    ```python
    model.fit(x, y, epochs=10, callbacks=[mmkeras.distribute.BackupAndRestore("/shared/run1/backup")])
    # killed in epoch 7 and restarted with the same command: resumes at epoch 7 (0-based 6)
    ```
    """

    def __init__(self, backup_dir, delete_checkpoint=True, keep=2, strategy=None):
        super().__init__()
        self.backup_dir = str(backup_dir)
        self.delete_checkpoint = delete_checkpoint
        self.keep = max(1, int(keep))
        self._strategy = strategy
        self.restored_epoch = None  # the epoch training resumed at (None: fresh start)

    def _chief(self):
        return cluster.is_chief(self._strategy or self.model.distribute_strategy)

    def on_train_begin(self, logs=None):
        self._write_dir = self.backup_dir if self._chief() else outputs.worker_temp_dir("backup")
        latest = os.path.join(self.backup_dir, LATEST)  # every worker restores the CHIEF's backup
        if not os.path.exists(latest):
            return
        with open(latest) as f:
            state = json.load(f)
        strategy = self._strategy or self.model.distribute_strategy
        with strategy.scope():
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        self.model._initial_epoch = int(state["epoch"])  # noqa: SLF001 (what keras BackupAndRestore sets)
        self.restored_epoch = int(state["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        directory = self._write_dir
        os.makedirs(directory, exist_ok=True)
        name = f"epoch-{epoch + 1:05d}.weights.h5"
        tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}.weights.h5")
        self.model.save_weights(tmp)
        os.replace(tmp, os.path.join(directory, name))
        tmp_json = os.path.join(directory, f".tmp-{uuid.uuid4().hex}.json")
        with open(tmp_json, "w") as f:
            json.dump({"epoch": epoch + 1, "weights": name}, f)
        os.replace(tmp_json, os.path.join(directory, LATEST))  # the commit point
        old = sorted(n for n in os.listdir(directory) if n.startswith("epoch-") and n.endswith(".weights.h5"))
        for n in old[:-self.keep]:
            os.remove(os.path.join(directory, n))

    def on_train_end(self, logs=None):
        # Only after a completed fit: a crash never reaches here, so the backup survives it.
        if self.delete_checkpoint and getattr(self, "_write_dir", None):
            for n in os.listdir(self._write_dir) if os.path.isdir(self._write_dir) else []:
                if n == LATEST or (n.startswith("epoch-") and n.endswith(".weights.h5")):
                    os.remove(os.path.join(self._write_dir, n))
        self.model._initial_epoch = None  # noqa: SLF001 (a later fit starts from epoch 0 again)


def _redirect(callback, strategy):
    """Points a callback's output at a temporary directory on non-chief workers (in place)."""
    if isinstance(callback, BackupAndRestore):
        return callback  # handles chief/non-chief itself
    if isinstance(callback, keras.callbacks.BackupAndRestore):
        raise ValueError("keras.callbacks.BackupAndRestore is not multi-worker safe (all workers write one file); "
                         "use mmkeras.distribute.BackupAndRestore")
    for attr, fn in (("log_dir", outputs.write_dir), ("filepath", outputs.write_path)):
        value = getattr(callback, attr, None)
        if isinstance(value, (str, os.PathLike)):
            setattr(callback, attr, fn(value, strategy))
    return callback


def prepare_callbacks(callbacks=None, backup_dir=None, strategy=None):
    """Adapts callbacks to the strategy: chief-only outputs and BackupAndRestore for multi-worker runs.

    On non-chief workers, callbacks writing to ``log_dir`` (TensorBoard) or
    ``filepath`` (checkpoints) are redirected to temporary directories removed
    at exit. A :class:`BackupAndRestore` on ``backup_dir`` is added unless one
    is present; multi-worker runs must have one (fault tolerance by default).

    Args:
        callbacks: list of Keras callbacks (e.g. ``mmkeras.callbacks.default(...)``).
        backup_dir: str or None. Backup directory (on storage shared by all
            workers); required for multi-worker runs unless ``callbacks`` has
            a BackupAndRestore.
        strategy: the strategy (default: the current one).

    Returns:
        list: the callbacks to pass to ``fit``.

    Example:
    ```python
    callbacks = mmkeras.distribute.prepare_callbacks(mmkeras.callbacks.default("logs/run1"),
                                                     backup_dir="/shared/run1/backup", strategy=strategy)
    model.fit(ds, epochs=10, callbacks=callbacks)
    ```
    """
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    callbacks = [_redirect(c, strategy) for c in (callbacks or [])]
    if not any(isinstance(c, BackupAndRestore) for c in callbacks):
        if backup_dir is not None:
            callbacks.insert(0, BackupAndRestore(backup_dir, strategy=strategy))
        elif cluster.is_multi_worker(strategy):
            raise ValueError("multi-worker training needs backup_dir= (shared storage) so a restarted job can "
                             "resume; pass backup_dir or a mmkeras.distribute.BackupAndRestore callback")
    return callbacks
