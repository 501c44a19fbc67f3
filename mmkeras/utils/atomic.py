"""Durable, atomic file writes: the one way mmkeras replaces a file or a directory.

Every writer (checkpoints, backups, reports, figures, SavedModel exports,
benchmark results) goes through :func:`atomic_path`:

- the content is written to a temporary name in the target's directory
  (``.tmp-mmkeras-<host>-<pid>-<random>-<target name>``), so a reader or a
  server polling the directory never sees half a file;
- the temporary file (every file of a temporary directory) and then the
  directory are fsynced before the rename, and the parent directory after it,
  so a power loss leaves either the old or the new content, never an empty file;
- a write killed at any point leaves the previous file intact; its temporary
  file is removed by the next write to the same place (temporaries of dead
  processes on this host, or of any process after a day);
- the result honours the umask (``0o666 & ~umask``, directories ``0o777 & ~umask``)
  like ``open()`` would, so a serving process running as another user can read it.
"""

import contextlib
import os
import re
import shutil
import socket
import time
import uuid

PREFIX = ".tmp-mmkeras-"
STALE_SECONDS = 24 * 3600  # temporaries of other hosts (shared storage): removed after this long


def _host():
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def umask():
    """The process umask (read without changing it where ``/proc`` tells it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _is_stale(name, directory):
    """Whether a temporary of ours (``name`` in ``directory``) was left by a killed write."""
    match = re.match(re.escape(PREFIX) + r"([A-Za-z0-9]+)-(\d+)-[0-9a-f]+-", name)
    if match is None:
        return False
    host, pid = match.group(1), int(match.group(2))
    if host == _host():
        return pid != os.getpid() and not _pid_alive(pid)
    try:
        return time.time() - os.lstat(os.path.join(directory, name)).st_mtime > STALE_SECONDS
    except FileNotFoundError:
        return False


def remove_stale(path):
    """Removes temporaries of killed writes to ``path`` (same directory, same target name).

    Returns:
        list of str: the removed paths.
    """
    directory, target = os.path.split(os.path.abspath(path))
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        if name.startswith(PREFIX) and name.endswith("-" + target) and _is_stale(name, directory):
            stale = os.path.join(directory, name)
            if os.path.isdir(stale) and not os.path.islink(stale):
                shutil.rmtree(stale, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(stale)
            removed.append(stale)
    return removed


def fsync_path(path):
    """fsyncs a file, or a directory's entries (and, recursively, its files and subdirectories)."""
    if os.path.isdir(path) and not os.path.islink(path):
        for root, _dirs, files in os.walk(path, topdown=False):
            for name in files:
                _fsync_one(os.path.join(root, name), os.O_RDONLY)
            _fsync_one(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    else:
        _fsync_one(path, os.O_RDONLY)


def _fsync_one(path, flags):
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. a directory on a file system that cannot sync one
        pass
    finally:
        os.close(fd)


def _apply_umask(path):
    """Sets the mode ``open()``/``mkdir`` would give under the umask (writers like mkstemp use 0600)."""
    mask = umask()
    if os.path.isdir(path) and not os.path.islink(path):
        for root, _dirs, files in os.walk(path):
            os.chmod(root, 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path, move=os.replace):
    """A temporary path next to ``path``; on success it becomes ``path`` durably and atomically.

    The body writes a file (or creates a directory) at the yielded path, e.g.
    with ``model.save``; nothing is renamed if the body raises, and the
    temporary is removed. Stale temporaries of killed writes to ``path`` are
    removed first.

    Args:
        path: str or path-like. The final file or directory.
        move: ``move(tmp, final)``, the commit (default ``os.replace``). A
            directory cannot replace a non-empty one; pass a function that
            moves the old one aside (see ``mmkeras.export``).

    Yields:
        str: the temporary path (the target's extension kept, for writers that check it).

    Example:
    ```python
    with atomic_path("ckpt/best.keras") as tmp:
        model.save(tmp)
    ```
    """
    final = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(final)
    os.makedirs(directory, exist_ok=True)
    remove_stale(final)
    tmp = os.path.join(directory, f"{PREFIX}{_host()}-{os.getpid()}-{uuid.uuid4().hex[:12]}-{os.path.basename(final)}")
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"the writer of {final} did not create its temporary {tmp}")
        _apply_umask(tmp)
        fsync_path(tmp)
        move(tmp, final)
        _fsync_one(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))  # the rename itself
    finally:
        _remove(tmp)


def atomic_write_bytes(path, data):
    """Writes ``data`` to ``path`` atomically and durably (see :func:`atomic_path`).

    Returns:
        str: ``path``, as given.

    Example:
    ```python
    atomic_write_bytes("report/confusion.png", png)
    ```
    """
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)
    return path


def atomic_write_text(path, text, encoding="utf-8"):
    """Writes ``text`` to ``path`` atomically and durably (see :func:`atomic_path`).

    Example:
    ```python
    atomic_write_text("results/run.json", json.dumps(result))
    ```
    """
    return atomic_write_bytes(path, text.encode(encoding))
