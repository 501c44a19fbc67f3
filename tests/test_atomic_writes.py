"""Durable, clean writes (mmkeras.utils.atomic): fsync, killed writes, stale temporaries, umask."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from mmkeras.utils import atomic
from mmkeras.utils.atomic import atomic_path, atomic_write_bytes, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _temporaries(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith(".tmp-"))


def test_write_replaces_and_fsyncs_file_then_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    target = tmp_path / "report.json"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _temporaries(tmp_path) == []
    # the temporary file before the rename, the directory after it
    assert len(synced) == 2 and os.path.basename(synced[0]).startswith(atomic.PREFIX)
    assert synced[0].endswith("-report.json") and synced[1] == str(tmp_path)


def test_files_honour_the_umask(tmp_path, umask_022):
    atomic_write_bytes(tmp_path / "a.png", b"png")
    assert oct(os.stat(tmp_path / "a.png").st_mode & 0o777) == oct(0o644)
    with atomic_path(tmp_path / "model.keras") as tmp:  # a writer that makes 0600 files (mkstemp does)
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    assert oct(os.stat(tmp_path / "model.keras").st_mode & 0o777) == oct(0o644)
    with atomic_path(tmp_path / "export") as tmp:
        os.mkdir(tmp, 0o700)
        (open(os.path.join(tmp, "saved_model.pb"), "wb")).close()
        os.chmod(os.path.join(tmp, "saved_model.pb"), 0o600)
    assert oct(os.stat(tmp_path / "export").st_mode & 0o777) == oct(0o755)
    assert oct(os.stat(tmp_path / "export" / "saved_model.pb").st_mode & 0o777) == oct(0o644)


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "best.keras"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"previous" and _temporaries(tmp_path) == []


def test_a_killed_write_keeps_the_previous_file_and_the_next_write_removes_its_temporary(tmp_path):
    target = tmp_path / "latest.json"
    target.write_text("previous")
    script = textwrap.dedent(f"""
        import os, signal
        from mmkeras.utils.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert target.read_text() == "previous"
    (stale,) = _temporaries(tmp_path)
    assert stale.endswith("-latest.json")
    live = tmp_path / f"{atomic.PREFIX}{atomic._host()}-{os.getpid()}-abc123-latest.json"  # a live writer's
    live.write_text("in progress")
    other = tmp_path / f"{atomic.PREFIX}{atomic._host()}-1-abc123-other.json"  # another target's
    other.write_text("x")
    atomic_write_text(target, "next")
    assert target.read_text() == "next"
    assert _temporaries(tmp_path) == sorted([live.name, other.name])


def test_a_stale_temporary_directory_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{atomic.PREFIX}{atomic._host()}-{int(dead.stdout)}-0f0f-1"
    (stale / "variables").mkdir(parents=True)
    with atomic_path(tmp_path / "1") as tmp:
        os.mkdir(tmp)
    assert not stale.exists() and (tmp_path / "1").is_dir()


def test_checkpoint_and_report_writers_use_it(tmp_path, umask_022):
    import keras

    from mmkeras.callbacks import atomic_save
    from mmkeras.evaluation.classification_report import _atomic_write
    from mmkeras.evaluation.explain_figure import write_atomic

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    atomic_save(model, tmp_path / "m.keras")
    _atomic_write(str(tmp_path / "r.txt"), b"report")
    write_atomic(tmp_path / "f" / "x.png", b"png")
    for path in (tmp_path / "m.keras", tmp_path / "r.txt", tmp_path / "f" / "x.png"):
        assert os.stat(path).st_mode & 0o777 == 0o644, path  # model.save's temporary was 0600 before
    assert _temporaries(tmp_path) == []
