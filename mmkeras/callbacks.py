"""Training callbacks: TensorBoard with a per-epoch confusion matrix, atomic checkpoints.

``default(log_dir)`` is what most runs want: TensorBoard scalars + confusion-matrix
images + an atomic best-model checkpoint.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from mmkeras.evaluation.confusion import confusion_image, confusion_matrix, confusion_text
from mmkeras.utils.atomic import atomic_path


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras TensorBoard plus a confusion matrix per epoch.

    The image is the report's labelled rendering (class names on both axes,
    counts in the cells, axis titles; needs matplotlib, ``pip install
    'mmkeras[plot]'``, else an unlabelled heat map) and the same matrix is
    logged as a text table with class names.

    Args:
        log_dir: str. Where event files go (``train/``, ``validation/``, ``images/``).
        validation_data: ``tf.data.Dataset`` of ``(features, labels)`` or None to use
            the validation data of the current ``MultimodalModel.fit`` call.
        head: str or None. Classification head to plot (default: the first one).
        **kwargs: passed to ``keras.callbacks.TensorBoard``.

    Example:
    ```python
    model.fit(x, y, validation_split=0.1, epochs=5, callbacks=[mmkeras.callbacks.TensorBoard("logs/run1")])
    ```
    """

    def __init__(self, log_dir="logs", validation_data=None, head=None, **kwargs):
        super().__init__(log_dir=log_dir, **kwargs)
        self.cm_data = validation_data
        self.head = head
        self._image_writer = None

    def _classification_head(self):
        heads = getattr(self.model, "heads", None) or []
        for h in heads:
            if h["type"] == "classification" and (self.head is None or h["name"] == self.head):
                return h, len(heads) > 1
        return None, False

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        head, multi = self._classification_head()
        data = self.cm_data if self.cm_data is not None else getattr(self.model, "last_validation_data", None)
        if head is None or not isinstance(data, tf.data.Dataset):
            return
        y_true, y_pred = [], []
        for features, labels in data:
            probs = self.model(features, training=False)
            if multi:
                probs, labels = probs[head["name"]], labels[head["name"]]
            y_pred.append(np.argmax(keras.ops.convert_to_numpy(probs), axis=-1))
            y_true.append(np.asarray(labels).reshape(-1))
        matrix = confusion_matrix(np.concatenate(y_true), np.concatenate(y_pred), head["units"])
        names = self.model.head_class_names(head["name"])
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
        title = f"{self.model.name}, epoch {epoch + 1}: validation accuracy {accuracy:.2%}"
        if self._image_writer is None:
            self._image_writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "images"))
        with self._image_writer.as_default():
            tf.summary.image(f"confusion_matrix/{head['name']}", confusion_image(matrix, names, title), step=epoch)
            tf.summary.text(f"confusion_matrix_table/{head['name']}", "```\n" + confusion_text(matrix, names) + "\n```",
                            step=epoch)
        self._image_writer.flush()

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self._image_writer is not None:
            self._image_writer.close()
            self._image_writer = None


class AtomicModelCheckpoint(keras.callbacks.Callback):
    """Saves the model as ``.keras`` at epoch end, atomically and durably (``mmkeras.utils.atomic``).

    A crash mid-save leaves the previous checkpoint intact. The best value and
    its epoch are state a resumed run needs (else it restarts at -inf and
    overwrites the best model with a worse epoch): ``backup_state`` /
    ``restore_state`` hand them to :class:`mmkeras.distribute.BackupAndRestore`,
    which ``default(..., backup_dir=...)`` wires up.

    Args:
        filepath: str. Target ``.keras`` path.
        monitor: str. Metric deciding "best" (ignored when ``save_best_only`` is False).
        mode: str. ``"min"`` or ``"max"``.
        save_best_only: bool. Only overwrite when ``monitor`` improves.

    Example:
    ```python
    model.fit(..., callbacks=[AtomicModelCheckpoint("ckpt/best.keras", monitor="val_loss")])
    ```
    """

    def __init__(self, filepath, monitor="val_loss", mode="min", save_best_only=True):
        super().__init__()
        if not str(filepath).endswith(".keras"):
            raise ValueError(f"checkpoint filepath must end in .keras, got {filepath!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"checkpoint mode must be 'min' or 'max', got {mode!r}")
        self.filepath, self.monitor, self.mode, self.save_best_only = str(filepath), monitor, mode, save_best_only
        self.best = np.inf if mode == "min" else -np.inf
        self.best_epoch = None  # 0-based epoch of the saved best model

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if self.save_best_only:
            if value is None:
                return
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best, self.best_epoch = float(value), epoch
        atomic_save(self.model, self.filepath)

    def backup_state(self):
        """What a resumed run needs: ``{"monitor", "best", "best_epoch"}`` (JSON-safe)."""
        return {"monitor": self.monitor, "best": float(self.best), "best_epoch": self.best_epoch}

    def restore_state(self, state):
        """Continues from a backed-up :meth:`backup_state` (the monitored metric must be the same)."""
        if state["monitor"] != self.monitor:
            raise ValueError(f"the backup tracked the best {state['monitor']!r}, this checkpoint monitors "
                             f"{self.monitor!r}: resume with the same monitor")
        self.best, self.best_epoch = float(state["best"]), state["best_epoch"]


def atomic_save(model, filepath):
    """``model.save(filepath)``, atomically and durably (:func:`mmkeras.utils.atomic.atomic_path`).

    Example:
    ```python
    atomic_save(model, "runs/1/model.keras")
    ```
    """
    with atomic_path(filepath) as tmp:
        model.save(tmp)  # the temporary keeps the .keras ending model.save requires


def default(log_dir="logs", checkpoint_path=None, monitor="val_loss", validation_data=None, backup_dir=None):
    """The callbacks most runs want: TensorBoard (+ confusion matrix) and a best checkpoint.

    Args:
        log_dir: str. TensorBoard log directory.
        checkpoint_path: str or None. ``.keras`` path for the best model
            (default ``<log_dir>/best.keras``).
        monitor: str. Metric for the best checkpoint.
        validation_data: optional dataset for the confusion matrix.
        backup_dir: str or None. ``BackupAndRestore`` directory: every epoch
            backs up the weights, optimizer, random-generator states and the
            best checkpoint's best value; a killed run started again with the
            same arguments resumes exactly where the backup left it (same final
            weights as an uninterrupted run). Under a multi-worker strategy a
            backup is always added (default ``<log_dir>/backup``) and non-chief
            workers write logs/checkpoints to temporary directories (see
            :func:`mmkeras.distribute.prepare_callbacks`).

    Example:
    ```python
    model.fit(x, y, validation_split=0.1, epochs=5, callbacks=mmkeras.callbacks.default("logs/run1"))
    # resumable: run the same two lines again after a crash
    callbacks = mmkeras.callbacks.default("logs/run1", backup_dir="logs/run1/backup")
    model.fit(x, y, validation_split=0.1, epochs=5, callbacks=callbacks)
    ```
    """
    checkpoint_path = checkpoint_path or os.path.join(log_dir, "best.keras")
    mode = "max" if "acc" in monitor or "auc" in monitor else "min"
    callbacks = [
        TensorBoard(log_dir, validation_data=validation_data),
        AtomicModelCheckpoint(checkpoint_path, monitor=monitor, mode=mode),
    ]
    from mmkeras.distribute import cluster, prepare_callbacks

    strategy = tf.distribute.get_strategy()
    if cluster.is_multi_worker(strategy) and backup_dir is None:
        backup_dir = os.path.join(log_dir, "backup")
    if backup_dir is not None or cluster.is_multi_worker(strategy):
        callbacks = prepare_callbacks(callbacks, backup_dir=backup_dir, strategy=strategy)
    return callbacks
