"""Runs fuzz cases in a TF-only worker process with a memory watchdog, timeouts and restarts.

The parent never loads the model: :class:`Worker` starts ``fuzz_worker.py`` (the
TF Serving stand-in), hands it one case file at a time, and while it waits reads
the worker's resident memory from ``/proc/<pid>/status`` every few milliseconds.
A case that runs past its time limit is a hang, a worker that exits is a crash,
and a worker over the memory kill limit is a blow-up; each ends that worker, is
recorded, and the next case gets a fresh one.
"""

import json
import os
import pickle
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORKER = Path(__file__).resolve().parent / "fuzz_worker.py"
ASSERT_PREFIX = "mmkeras: input '"


def rss_kb(pid):
    """Resident memory of a process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def mmkeras_message(message):
    """The text of an mmkeras check inside a TensorFlow error (prefix and quote escaping removed).

    TensorFlow reports a failed graph assertion as ``{{function_node ...}} assertion failed:
    [mmkeras: input \\'image\\', ...]``; this returns ``mmkeras: input 'image', ...`` (the
    first line, without the brackets), or the whole message when it holds no assertion.
    """
    text = message.replace("\\'", "'")
    start = text.find("assertion failed: [")
    if start < 0:
        return text
    first_line = text[start + len("assertion failed: ["):].split("\n")[0]
    return first_line[:-1] if first_line.endswith("]") else first_line


def names_the_input(answer):
    """True when a failed answer is INVALID_ARGUMENT from an mmkeras check naming its input."""
    return answer.get("status") == "InvalidArgumentError" and mmkeras_message(answer["message"]).startswith(
        ASSERT_PREFIX)


class Worker:
    """One ``fuzz_worker.py`` process serving ``export_dir``."""

    def __init__(self, export_dir, log_dir, start_timeout=300):
        self.log = open(Path(log_dir) / f"worker-{time.time_ns()}.stderr", "w")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.proc = subprocess.Popen([sys.executable, str(WORKER), str(export_dir)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.buffer = b""
        line = self._read_line(start_timeout, kill_kb=None)[0]
        if line is None:
            raise RuntimeError(f"fuzz worker did not start; see {self.log.name}")
        self.ready = json.loads(line)

    def _read_line(self, timeout, kill_kb):
        """``(line or None, why, peak_rss_kb)``: waits for one stdout line, watching memory."""
        deadline = time.monotonic() + timeout
        peak = 0
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            peak = max(peak, rss_kb(self.proc.pid))
            if kill_kb is not None and peak > kill_kb:
                return None, "memory", peak
            if time.monotonic() > deadline:
                return None, "hang", peak
            ready, _, _ = select.select([fd], [], [], 0.005)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None, "crash", peak
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line, "", peak

    def run(self, case_file, timeout, kill_kb):
        """Answers one case; ``{"outcome": "answered", ...}`` or ``{"outcome": "hang"|"crash"|"memory"}``."""
        start = time.perf_counter()
        try:
            self.proc.stdin.write(f"{case_file}\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            return {"outcome": "crash", "returncode": self.proc.poll()}
        line, why, peak = self._read_line(timeout, kill_kb)
        wall = time.perf_counter() - start
        if line is None:
            self.close()
            return {"outcome": why, "wall_s": wall, "sampled_rss_kb": peak, "returncode": self.proc.returncode}
        return {"outcome": "answered", "wall_s": wall, "sampled_rss_kb": peak, **json.loads(line)}

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


def run_cases(export_dir, cases, timeout=60.0, kill_kb=8 << 20, progress=None):
    """Runs ``cases`` (dicts with ``signature`` and ``inputs``) in workers; returns one result per case.

    Args:
        export_dir: the SavedModel version directory.
        cases: list of dicts: ``id``, ``signature``, ``inputs`` (name -> numpy array), plus
            anything else (kept in the result).
        timeout: float. Seconds one case may take before it counts as a hang.
        kill_kb: int. Resident memory at which the worker is killed (a blow-up).
        progress: callable ``(i, result)`` or None.

    Returns:
        ``(results, info)``: per case the worker's answer plus ``outcome``, ``wall_s``,
        ``sampled_rss_kb``; ``info`` has the worker's start-up report and restart count.
    """
    results, info = [], {"restarts": 0}
    with tempfile.TemporaryDirectory(prefix="mmkeras-fuzz-") as tmp:
        worker = Worker(export_dir, tmp)
        info["ready"] = worker.ready
        try:
            for i, case in enumerate(cases):
                path = Path(tmp) / f"case-{i}.pkl"
                with open(path, "wb") as f:
                    pickle.dump({"signature": case["signature"], "inputs": case["inputs"]}, f)
                result = worker.run(path, timeout, kill_kb)
                path.unlink()
                if result["outcome"] != "answered":
                    info["restarts"] += 1
                    worker = Worker(export_dir, tmp)
                results.append({**{k: v for k, v in case.items() if k != "inputs"}, **result,
                                "request_bytes": int(sum(_nbytes(v) for v in case["inputs"].values()))})
                if progress is not None:
                    progress(i, results[-1])
        finally:
            worker.close()
    return results, info


def _nbytes(array):
    if array.dtype == object:
        return sum(len(x) for x in np.asarray(array).reshape(-1))
    return array.nbytes


def problems(results, rss_limit_kb, time_limit_s):
    """Everything the fuzz contract forbids, one line per offending case.

    The contract: no crash, hang or memory blow-up; peak resident memory under
    ``rss_limit_kb``; no case slower than ``time_limit_s``; no NaN/Inf in any
    output; every error is INVALID_ARGUMENT whose message starts with
    ``mmkeras: input '``; a case expected to succeed succeeds and one expected
    to fail fails.
    """
    out = []
    for r in results:
        where = f"case {r['id']} ({r['family']})"
        if r["outcome"] != "answered":
            out.append(f"{where}: {r['outcome']}")
            continue
        if r["maxrss_kb"] > rss_limit_kb:
            out.append(f"{where}: peak RSS {r['maxrss_kb'] / 1024:.0f} MiB > {rss_limit_kb / 1024:.0f} MiB")
        if r["seconds"] > time_limit_s:
            out.append(f"{where}: took {r['seconds']:.1f} s > {time_limit_s} s")
        if r["ok"] and not r["finite"]:
            out.append(f"{where}: NaN or Inf in an output")
        if not r["ok"] and not names_the_input(r):
            out.append(f"{where}: {r['status']}: {r['message'][:300]!r} does not name the input")
        if r["expect"] == "ok" and not r["ok"]:
            out.append(f"{where}: expected an answer, got {mmkeras_message(r['message'])[:300]!r}")
        if r["expect"] == "error" and r["ok"]:
            out.append(f"{where}: expected INVALID_ARGUMENT, got an answer")
    return out
