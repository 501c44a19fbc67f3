"""docs/first-hour.md runs as written: its python block makes the files, then every command of
its bash blocks runs in order in the same folder. A command with a trailing ``# error: TEXT``
must exit 1 with TEXT in its one-line error and no traceback; every other command must succeed.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "first-hour.md"
FENCE = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


def commands(text):
    """The bash blocks' commands, continuation lines joined, with the expected error (or None)."""
    out = []
    for kind, code in FENCE.findall(text):
        if kind != "bash":
            continue
        for line in code.replace("\\\n", " ").splitlines():
            if not line.strip():
                continue
            command, _, expected = line.partition("# error:")
            out.append((command.strip(), expected.strip() or None))
    return out


def test_the_first_hour_walk_through_runs_as_written(tmp_path):
    text = DOC.read_text()
    python = "\n\n".join(code for kind, code in FENCE.findall(text) if kind == "python")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the commands themselves must keep TensorFlow quiet
    subprocess.run([sys.executable, "-c", python], cwd=tmp_path, env=env, check=True, timeout=600)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mmkeras").write_text(f'#!/bin/sh\nexec {sys.executable} -m mmkeras "$@"\n')
    (bin_dir / "mmkeras").chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    steps = commands(text)
    assert sum(expected is not None for _, expected in steps) >= 4 and len(steps) >= 14
    for command, expected in steps:
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        said = proc.stdout + proc.stderr
        assert "Traceback" not in said and "cuInit" not in said and "oneDNN" not in said, (command, said[-3000:])
        if expected is None:
            assert proc.returncode == 0, (command, said[-3000:])
        else:
            assert proc.returncode == 1 and expected in proc.stderr, (command, expected, said[-3000:])
            assert len(proc.stderr.strip().splitlines()) == 1, (command, proc.stderr)
