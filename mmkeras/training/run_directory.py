"""The output directory of ``mmkeras train``: its state file, per-epoch history, resume and best epoch.

``DIR/run.json`` says what the run is (preset, class names, epochs asked for),
the metrics of every finished epoch, and whether the run finished (written last,
after the report and the export). A run killed before that is resumed by the
same command from ``DIR/backup`` (:class:`mmkeras.distribute.BackupAndRestore`);
a finished run is replaced only on request.
"""

import json
import math
import os
import shutil
import tempfile

RUN_FILE = "run.json"
BACKUP = "backup"
# What `train` writes, so --overwrite clears a run without touching anything else in --out.
OUTPUTS = ("model.keras", "best.keras", "logs", "report", "saved_model", BACKUP, RUN_FILE)


def write_json(path, value):
    """Writes JSON through a temporary file + ``os.replace`` (a kill never leaves half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def higher_is_better(monitor):
    """The rule :func:`mmkeras.callbacks.default` uses for its best checkpoint."""
    return "acc" in monitor or "auc" in monitor


class RunDirectory:
    """One ``mmkeras train --out DIR``.

    Args:
        path: str. The output directory.
        identity: dict. What must match to resume (preset, class names, modalities).

    Example:
    ```python
    run = RunDirectory("runs/first", {"preset": "image_small", "class_names": ["a", "b"]})
    resumed = run.prepare(overwrite=False)   # ValueError if it holds a finished run
    ```
    """

    def __init__(self, path, identity):
        self.path, self.identity = path, identity
        self.state = self._read()

    def file(self, name):
        return os.path.join(self.path, name)

    def _read(self):
        try:
            with open(self.file(RUN_FILE), encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise ValueError(f"--out {self.path!r}: {RUN_FILE} is unreadable ({err}); pass --overwrite to start "
                             f"a new run there") from None
        return state if isinstance(state, dict) else None

    def finished(self):
        """True for a run that completed (or a directory with a model.keras from before run.json existed)."""
        if self.state is not None:
            return bool(self.state.get("finished"))
        return os.path.exists(self.file("model.keras"))

    def resumable(self):
        return self.state is not None and not self.finished() and os.path.exists(self.file(f"{BACKUP}/latest.json"))

    def prepare(self, overwrite):
        """Clears or checks ``DIR`` before training; returns the epochs already done (0: a fresh run).

        Raises:
            ValueError: ``DIR`` holds a finished run (without ``overwrite``), or an
                unfinished run of another preset / other classes.
        """
        if overwrite:
            for name in OUTPUTS:
                target = self.file(name)
                if os.path.isdir(target):
                    shutil.rmtree(target)
                elif os.path.exists(target):
                    os.remove(target)
            self.state = None
        elif self.finished():
            done = f"{len(self.state['history'])} epochs, " if self.state else ""
            raise ValueError(f"--out {self.path!r} holds a finished run ({done}model.keras); pass --overwrite to "
                             f"replace it, or choose another --out")
        elif self.resumable():
            differs = {k: (self.state["identity"].get(k), v) for k, v in self.identity.items()
                       if self.state["identity"].get(k) != v}
            if differs:
                what = "; ".join(f"{k}: {old!r} there, {new!r} now" if len(repr(old)) < 80 else f"{k} differs"
                                 for k, (old, new) in differs.items())
                raise ValueError(f"--out {self.path!r} holds an unfinished run of another model ({what}); pass "
                                 f"--overwrite to start over, or choose another --out")
            return len(self.state["history"])
        os.makedirs(self.path, exist_ok=True)
        self.state = {"identity": self.identity, "finished": False, "history": []}
        self._write()
        return 0

    def _write(self):
        write_json(self.file(RUN_FILE), self.state)

    def record_epoch(self, epoch, logs):
        """Keeps epoch ``epoch`` (1-based) metrics; a redone epoch replaces its old entry."""
        history = [h for h in self.state["history"] if h["epoch"] < epoch]
        history.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()
                                           if isinstance(v, (int, float)) and math.isfinite(float(v))}})
        self.state["history"] = history
        self._write()

    def best_epoch(self, monitor):
        """``(epoch, value)`` of the best epoch by ``monitor`` (the first of equals), or None."""
        scored = [h for h in self.state["history"] if monitor in h]
        if not scored:
            return None
        sign = 1 if higher_is_better(monitor) else -1
        best = max(scored, key=lambda h: (sign * h[monitor], -h["epoch"]))
        return best["epoch"], best[monitor]

    def finish(self, **summary):
        self.state.update(summary, finished=True)
        self._write()

    def callbacks(self, checkpoint, backup_callback):
        """Callbacks recording each epoch here, before ``backup_callback`` commits it.

        Keras runs callbacks in order: the epoch's metrics (and the best checkpoint)
        are written before the backup that makes the epoch count as done, so a kill
        in between only redoes that epoch.
        """
        import keras

        run = self

        class RecordEpoch(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                run.record_epoch(epoch + 1, logs)

        best = self.best_epoch(checkpoint.monitor)
        if best is not None:  # a resumed run: only a better epoch replaces best.keras
            checkpoint.best = best[1]
        return [RecordEpoch(), backup_callback]
