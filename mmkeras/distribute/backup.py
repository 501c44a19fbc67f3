"""Fault tolerance: an atomic, multi-worker aware BackupAndRestore, and callback wiring.

A multi-worker job cannot survive the loss of a worker (the collectives wait
for it), so the recovery model is: the job fails as a whole, the cluster
manager (Kubernetes, a launcher, :func:`mmkeras.distribute.launch_local`)
restarts every worker, and training resumes from the last backup.

Compared with ``keras.callbacks.BackupAndRestore`` this one
- writes the weights (with the optimizer state) and the epoch counter as one
  atomic unit (``mmkeras.utils.atomic``: temporary file, fsync, rename of a
  small ``latest.json``), so a worker killed while saving leaves the previous
  backup intact;
- resumes exactly: the random states of dropout and augmentation layers (Keras
  ``SeedGenerator`` states, which ``save_weights`` leaves out), the state of
  callbacks that keep one (the best-checkpoint tracker) and the shuffle order
  (:mod:`mmkeras.training.shuffle`) are restored, so a run killed at any point
  and resumed ends with the same weights as an uninterrupted one;
- lets every worker save (saving may be collective) but keeps only the chief's
  backup; on restart every worker restores from the chief's ``backup_dir``,
  which must therefore be on storage all workers see (NFS, a Kubernetes
  ReadWriteMany volume, GCS ``gs://`` is not supported by ``os.replace``).
"""

import contextlib
import json
import os

import keras
import numpy as np

from mmkeras.distribute import cluster, outputs
from mmkeras.training import shuffle
from mmkeras.utils.atomic import atomic_path, atomic_write_text

LATEST = "latest.json"


def _seed_states(model):
    """The model's ``SeedGenerator`` state variables (dropout, augmentation, sampling), in a fixed order."""
    seen, states = set(), []
    for v in model.variables:
        if v.name == "seed_generator_state" and id(v) not in seen:
            seen.add(id(v))
            states.append(v)
    return states


def _stateful(callback):
    """Whether a callback keeps state a resumed run needs (``backup_state``/``restore_state``)."""
    return callable(getattr(callback, "backup_state", None)) and callable(getattr(callback, "restore_state", None))


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up the training state every epoch; a restarted ``fit`` resumes from it, exactly.

    The backup holds the weights with the optimizer state, the epoch, the
    ``SeedGenerator`` states (dropout, augmentation) and the state of the
    ``stateful`` callbacks. At every epoch start the epoch-indexed shuffle of
    mmkeras datasets is set to the epoch (:func:`mmkeras.training.shuffle.set_epoch`).
    Place it after the callbacks it tracks (``prepare_callbacks`` does): at the
    end of an epoch it records their state after they have updated it.

    Args:
        backup_dir: str. Directory of the chief's backup (shared by all workers).
        delete_checkpoint: bool. Remove the backup when ``fit`` completes.
        keep: int. Backups kept (the newest ``keep``).
        strategy: the strategy (default: the model's).
        stateful: list of callbacks with ``backup_state() -> dict`` and
            ``restore_state(dict)`` (e.g. :class:`mmkeras.callbacks.AtomicModelCheckpoint`);
            their state is saved with every backup and restored on resume.

    Example:
    ```python
    checkpoint = mmkeras.callbacks.AtomicModelCheckpoint("run1/best.keras")
    backup = mmkeras.distribute.BackupAndRestore("/shared/run1/backup", stateful=[checkpoint])
    model.fit(x, y, epochs=10, callbacks=[checkpoint, backup])
    # killed in epoch 7 and restarted with the same command: resumes at epoch 7 (0-based 6)
    ```
    """

    def __init__(self, backup_dir, delete_checkpoint=True, keep=2, strategy=None, stateful=None):
        super().__init__()
        self.backup_dir = str(backup_dir)
        self.delete_checkpoint = delete_checkpoint
        self.keep = max(1, int(keep))
        self._strategy = strategy
        self.stateful = list(stateful or [])
        self.restored_epoch = None  # the epoch training resumed at (None: fresh start)

    def _model_strategy(self):
        """The strategy given, else the model's (None under JAX: this single process)."""
        return self._strategy or cluster.model_strategy(self.model)

    def _chief(self):
        return cluster.is_chief(self._model_strategy())

    def on_train_begin(self, logs=None):
        self._write_dir = self.backup_dir if self._chief() else outputs.worker_temp_dir("backup")
        latest = os.path.join(self.backup_dir, LATEST)  # every worker restores the CHIEF's backup
        if not os.path.exists(latest):
            return
        with open(latest) as f:
            state = json.load(f)
        strategy = self._model_strategy()
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
            self._restore_seeds(state.get("seeds"), latest)
        self._restore_callbacks(state.get("callbacks"), latest)
        self.model._initial_epoch = int(state["epoch"])  # noqa: SLF001 (what keras BackupAndRestore sets)
        self.restored_epoch = int(state["epoch"])

    def _restore_seeds(self, saved, latest):
        if saved is None:  # a backup written before seeds were saved
            return
        variables = _seed_states(self.model)
        if len(saved) != len(variables):
            raise ValueError(f"{latest} holds {len(saved)} random-generator states but the model has "
                             f"{len(variables)} (dropout/augmentation layers): is it the same architecture?")
        for v, values in zip(variables, saved):
            v.assign(np.asarray(values, dtype=v.dtype))

    def _restore_callbacks(self, saved, latest):
        if saved is None:  # a backup written before callback states were saved
            return
        if len(saved) != len(self.stateful):
            raise ValueError(f"{latest} holds the state of {len(saved)} callbacks but {len(self.stateful)} are "
                             f"tracked ({[type(c).__name__ for c in self.stateful]}): resume with the same callbacks")
        for callback, entry in zip(self.stateful, saved):
            if entry["type"] != type(callback).__name__:
                raise ValueError(f"{latest}: saved state of a {entry['type']} cannot restore a "
                                 f"{type(callback).__name__}: resume with the same callbacks in the same order")
            callback.restore_state(entry["state"])

    def on_epoch_begin(self, epoch, logs=None):
        shuffle.set_epoch(epoch)  # epoch k's shuffle order, however many passes ran before

    def on_epoch_end(self, epoch, logs=None):
        directory = self._write_dir
        name = f"epoch-{epoch + 1:05d}.weights.h5"
        with atomic_path(os.path.join(directory, name)) as tmp:
            self.model.save_weights(tmp)  # the temporary keeps the .weights.h5 ending Keras requires
        state = {"epoch": epoch + 1, "weights": name,
                 "seeds": [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)],
                 "callbacks": [{"type": type(c).__name__, "state": c.backup_state()} for c in self.stateful]}
        atomic_write_text(os.path.join(directory, LATEST), json.dumps(state, default=float))  # the commit point
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
    The backup goes last and tracks the callbacks that keep state (the best
    checkpoint's best value), so a resumed run continues exactly.

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
    backups = [c for c in callbacks if isinstance(c, BackupAndRestore)]
    if not backups:
        if backup_dir is not None:
            backups = [BackupAndRestore(backup_dir, strategy=strategy)]
        elif cluster.is_multi_worker(strategy):
            raise ValueError("multi-worker training needs backup_dir= (shared storage) so a restarted job can "
                             "resume; pass backup_dir or a mmkeras.distribute.BackupAndRestore callback")
    others = [c for c in callbacks if not isinstance(c, BackupAndRestore)]
    for backup in backups:  # it tracks the stateful callbacks and runs after them (see BackupAndRestore)
        backup.stateful += [c for c in others if _stateful(c) and c not in backup.stateful]
    return others + backups
