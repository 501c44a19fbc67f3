"""Wall time of ``mmkeras --help`` (issue 22.10: under 1 s; it must not import TensorFlow).

Each repetition is a fresh ``python -m mmkeras --help`` process; the median is
reported and checked against the 1 s target.

Usage: python benchmarks/cli_help.py [--reps 5] [--no_write]
"""

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks.common import machine, median, write_result

TARGET_S = 1.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no_write", action="store_true")
    args = p.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    runs = []
    for _ in range(args.reps):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mmkeras", "--help"], env=env, capture_output=True, check=True)
        runs.append(round(time.perf_counter() - start, 3))
    result = {"target": f"mmkeras --help < {TARGET_S} s (fresh process, wall time)", "runs_s": runs,
              "median_s": median(runs), "machine": machine()}
    print(json.dumps(result))
    if not args.no_write:
        write_result("cli_help", result)
    assert result["median_s"] < TARGET_S, f"mmkeras --help took {result['median_s']} s (target < {TARGET_S} s)"


if __name__ == "__main__":
    main()
