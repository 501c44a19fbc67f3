"""Chief-only outputs: checkpoints, TensorBoard logs and SavedModel exports.

Under a multi-worker strategy every worker must run the same callbacks and
saves (reading synchronised variables can be a collective operation that
waits for all workers), but only the chief's files are kept. Other workers
write to private temporary directories that are removed when the process exits.
"""

import atexit
import os
import shutil
import tempfile

from mmkeras.distribute import cluster

_TEMP_DIRS = []


def _cleanup():
    while _TEMP_DIRS:
        shutil.rmtree(_TEMP_DIRS.pop(), ignore_errors=True)


atexit.register(_cleanup)


def worker_temp_dir(label="out"):
    """A new private temporary directory for this worker, removed at exit (or by :func:`cleanup`)."""
    task_type, index = cluster.task()
    path = tempfile.mkdtemp(prefix=f"mmkeras-{task_type}{index}-{label}-")
    _TEMP_DIRS.append(path)
    return path


def cleanup():
    """Removes every temporary directory this worker created so far."""
    _cleanup()


def write_dir(path, strategy=None):
    """Where this worker should write ``path``: ``path`` itself on the chief, a temporary directory elsewhere.

    Example:
    ```python
    log_dir = mmkeras.distribute.write_dir("logs/run1", strategy)
    ```
    """
    if cluster.is_chief(strategy):
        return str(path)
    return os.path.join(worker_temp_dir(os.path.basename(os.path.normpath(str(path))) or "out"),
                        os.path.basename(os.path.normpath(str(path))))


def write_path(filepath, strategy=None):
    """Like :func:`write_dir` for a file: same name, inside a temporary directory on non-chief workers."""
    if cluster.is_chief(strategy):
        return str(filepath)
    return os.path.join(worker_temp_dir("file"), os.path.basename(str(filepath)))
