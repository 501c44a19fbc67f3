"""Local multi-worker launcher: N processes on this machine, TF_CONFIG over 127.0.0.1.

For trying MultiWorkerMirroredStrategy without a cluster (and for tests). Each
worker is a fresh Python process (TensorFlow must see its TF_CONFIG before it
initialises), runs ``fn`` and sends back its return value. If one worker fails,
the others are killed (a collective would otherwise wait for the dead peer);
the caller restarts the job, and ``BackupAndRestore`` resumes it.

CLI (one process per worker, like ``torchrun``)::

    python -m mmkeras.distribute.launch --num-workers 2 train.py -- --epochs 3
    python -m mmkeras.distribute.launch --num-workers 2 mypkg.train:main
"""

import argparse
import contextlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_ports(n):
    """Returns ``n`` distinct free TCP ports on 127.0.0.1 (bound at once, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def local_tf_configs(num_workers, ports=None):
    """One ``TF_CONFIG`` dict per worker for a cluster of ``num_workers`` on 127.0.0.1."""
    ports = ports or free_ports(num_workers)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(num_workers)]


def _fn_spec(fn):
    """``fn`` as a string a fresh interpreter can import: ``module:qualname``, ``file.py:name`` or ``file.py``."""
    if isinstance(fn, (str, os.PathLike)):
        return str(fn)
    module = fn.__module__
    if module == "__main__" or "<locals>" in fn.__qualname__:
        path = getattr(sys.modules.get(module), "__file__", None)
        if path is None or "<locals>" in fn.__qualname__:
            raise ValueError(f"{fn!r} cannot be imported by a worker process; define it at module level in a file")
        return f"{os.path.abspath(path)}:{fn.__qualname__}"
    return f"{module}:{fn.__qualname__}"


@dataclass
class WorkerResult:
    """What one worker process left behind."""

    index: int
    returncode: int
    value: object
    log_path: str

    def log_tail(self, lines=40):
        """The last ``lines`` lines of the worker's combined stdout/stderr."""
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class WorkerError(RuntimeError):
    """A worker exited non-zero or the job timed out; ``results`` holds every worker's outcome."""

    def __init__(self, message, results):
        super().__init__(message)
        self.results = results


class LocalJob:
    """A running local multi-worker job (see :func:`start_local`).

    Attributes:
        processes: list of ``subprocess.Popen``, index = worker index (worker 0 is chief).
        tf_configs: the ``TF_CONFIG`` each worker got.
    """

    def __init__(self, processes, tf_configs, log_paths, result_paths, workdir):
        self.processes = processes
        self.tf_configs = tf_configs
        self.log_paths = log_paths
        self._result_paths = result_paths
        self._workdir = workdir

    def kill(self, index, sig=signal.SIGKILL):
        """Sends ``sig`` to worker ``index`` (no-op if it has exited)."""
        proc = self.processes[index]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)  # each worker leads its own process group (start_new_session)

    def kill_all(self):
        """Kills every worker still running and reaps it."""
        for i in range(len(self.processes)):
            self.kill(i)
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def wait(self, timeout=600, fail_fast=True, check=True):
        """Waits for all workers; returns a list of :class:`WorkerResult`.

        Args:
            timeout: seconds for the whole job; then every worker is killed.
            fail_fast: kill the other workers as soon as one exits non-zero.
            check: raise :class:`WorkerError` unless every worker exited 0.
        """
        deadline = time.monotonic() + timeout
        timed_out = False
        try:
            while any(p.poll() is None for p in self.processes):
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                if fail_fast and any(p.poll() not in (None, 0) for p in self.processes):
                    break
                time.sleep(0.2)
        finally:
            self.kill_all()  # never leave a worker behind: after a failure, on timeout, on Ctrl-C
        results = [self._result(i) for i in range(len(self.processes))]
        for path in self._result_paths + [os.path.join(self._workdir, "args.pkl")]:
            with contextlib.suppress(OSError):
                os.remove(path)  # logs stay (error messages point at them); pickled values go
        if check and (timed_out or any(r.returncode != 0 for r in results)):
            what = f"timed out after {timeout}s" if timed_out else "failed"
            details = "\n".join(f"--- worker {r.index} (exit {r.returncode}), {r.log_path}:\n{r.log_tail()}"
                                for r in results if r.returncode != 0 or timed_out)
            raise WorkerError(f"local multi-worker job {what}:\n{details}", results)
        return results

    def _result(self, i):
        path = self._result_paths[i]
        value = None
        if self.processes[i].returncode == 0 and os.path.exists(path):
            with open(path, "rb") as f:
                value = pickle.load(f)
        return WorkerResult(i, self.processes[i].returncode, value, self.log_paths[i])


def start_local(num_workers, fn, args=(), kwargs=None, env=None, log_dir=None, threads_per_worker=None,
                python=sys.executable):
    """Starts ``num_workers`` processes running ``fn`` with TF_CONFIG over 127.0.0.1; returns a :class:`LocalJob`.

    Args:
        num_workers: int >= 1. Worker 0 is the chief.
        fn: a module-level callable, ``"module:function"``, ``"path/file.py:function"``
            or ``"path/script.py"`` (run as ``__main__`` with ``args`` as argv).
        args: positional arguments (picklable), or argv for a script.
        kwargs: keyword arguments (picklable) for ``fn``.
        env: extra environment variables for every worker.
        log_dir: where ``worker-<i>.log`` go (default: a new temporary directory).
        threads_per_worker: int or None. Sets TF's intra/inter-op thread pools,
            so N workers on one machine do not oversubscribe its cores.
        python: interpreter for the workers.

    Example:
    ```python
    job = mmkeras.distribute.start_local(2, "train.py:main", kwargs={"epochs": 3})
    results = job.wait(timeout=600)
    ```
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    workdir = tempfile.mkdtemp(prefix="mmkeras-launch-")
    log_dir = Path(log_dir or workdir)
    log_dir.mkdir(parents=True, exist_ok=True)
    spec = _fn_spec(fn)
    args_path = os.path.join(workdir, "args.pkl")
    with open(args_path, "wb") as f:
        pickle.dump((tuple(args), dict(kwargs or {})), f)
    configs = local_tf_configs(num_workers)
    processes, log_paths, result_paths = [], [], []
    try:
        for i, config in enumerate(configs):
            worker_env = {**os.environ, **(env or {}), "TF_CONFIG": json.dumps(config),
                          "MMKERAS_WORKER_FN": spec, "MMKERAS_WORKER_ARGS": args_path,
                          "MMKERAS_WORKER_RESULT": os.path.join(workdir, f"result-{i}.pkl")}
            # The worker imports `fn` relative to the caller's working directory, as the caller would.
            worker_env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + [p for p in [os.environ.get("PYTHONPATH")] if p])
            if threads_per_worker:
                worker_env["TF_NUM_INTRAOP_THREADS"] = worker_env["TF_NUM_INTEROP_THREADS"] = str(threads_per_worker)
                worker_env["OMP_NUM_THREADS"] = str(threads_per_worker)
            log_paths.append(str(log_dir / f"worker-{i}.log"))
            result_paths.append(worker_env["MMKERAS_WORKER_RESULT"])
            with open(log_paths[-1], "wb") as log:
                processes.append(subprocess.Popen([python, "-m", "mmkeras.distribute._worker"], env=worker_env,
                                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    except BaseException:
        LocalJob(processes, configs, log_paths, result_paths, workdir).kill_all()
        raise
    return LocalJob(processes, configs, log_paths, result_paths, workdir)


def launch_local(num_workers, fn, args=(), kwargs=None, timeout=600, env=None, log_dir=None, threads_per_worker=None):
    """Runs ``fn`` on ``num_workers`` local worker processes and returns their return values.

    Each worker gets ``TF_CONFIG`` for a cluster on 127.0.0.1 free ports, so
    ``mmkeras.distribute.strategy("auto")`` inside ``fn`` returns a
    MultiWorkerMirroredStrategy. The same ``fn`` runs unchanged on real hosts
    with their own ``TF_CONFIG`` (docs/distributed.md).

    Args:
        num_workers: int >= 1.
        fn: module-level callable or import string (see :func:`start_local`).
        args: picklable positional arguments for ``fn``.
        kwargs: picklable keyword arguments for ``fn``.
        timeout: seconds for the whole job; every worker is killed after it.
        env: extra environment variables for the workers.
        log_dir: where worker logs go (default: a temporary directory).
        threads_per_worker: TF thread pool size per worker (None: TF's default).

    Returns:
        list: ``fn``'s return value on each worker, by worker index.

    Raises:
        WorkerError: a worker exited non-zero or the job timed out (the message
            has each failed worker's log tail; all workers are killed).

    Example:
    ```python
    # train.py
    def main(epochs):
        strategy = mmkeras.distribute.strategy("auto")   # MultiWorkerMirroredStrategy
        with strategy.scope():
            model = mmkeras.build_model("image_audio_small", num_classes=10)
        model.fit(x, y, epochs=epochs)
        return model.evaluate(x_test, y_test)

    mmkeras.distribute.launch_local(2, "train.py:main", kwargs={"epochs": 3})
    ```
    """
    job = start_local(num_workers, fn, args, kwargs, env=env, log_dir=log_dir, threads_per_worker=threads_per_worker)
    return [r.value for r in job.wait(timeout=timeout)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mmkeras.distribute.launch",
                                     description="Run a training script/function on N local workers (TF_CONFIG).")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=24 * 3600)
    parser.add_argument("--threads-per-worker", type=int, default=None)
    parser.add_argument("--log-dir", default=None)
    parser.add_argument("target", help="script.py, file.py:function or module:function")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments after -- go to the script/function")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    job = start_local(ns.num_workers, ns.target, args, log_dir=ns.log_dir, threads_per_worker=ns.threads_per_worker)
    print(f"started {ns.num_workers} workers, logs: {Path(job.log_paths[0]).parent}", flush=True)
    try:
        job.wait(timeout=ns.timeout)
    except WorkerError as err:
        print(err, file=sys.stderr)
        return 1
    print("all workers exited 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
