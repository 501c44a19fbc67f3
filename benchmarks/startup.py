"""Target 4: time to ``import mmkeras`` and build the small tri-modal preset, fresh process.

Each repetition runs a new Python subprocess (so nothing is cached in memory)
that imports mmkeras and builds ``image_audio_text_small``; reports the median.

Usage: python benchmarks/startup.py [--reps 3] [--preset image_audio_text_small]
"""

import argparse
import json
import os
import subprocess
import sys

from benchmarks.common import median, write_result

CHILD = """
import time
t0 = time.perf_counter()
import mmkeras
t1 = time.perf_counter()
mmkeras.build_model({preset!r}, num_classes=10)
t2 = time.perf_counter()
print("STARTUP", t1 - t0, t2 - t1, t2 - t0)
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--preset", default="image_audio_text_small")
    p.add_argument("--no_write", action="store_true")
    args = p.parse_args(argv)
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow")}
    runs = []
    for _ in range(args.reps):
        out = subprocess.run([sys.executable, "-c", CHILD.format(preset=args.preset)], capture_output=True,
                             text=True, env=env, check=True).stdout
        line = next(x for x in out.splitlines() if x.startswith("STARTUP"))
        runs.append([float(v) for v in line.split()[1:]])
    result = {"target": "4: import mmkeras + build the small tri-modal preset < 10 s (fresh subprocess)",
              "preset": args.preset, "reps": args.reps,
              "runs_s": [{"import": round(a, 2), "build": round(b, 2), "total": round(c, 2)} for a, b, c in runs],
              "median_s": {"import": round(median([r[0] for r in runs]), 2),
                           "build": round(median([r[1] for r in runs]), 2),
                           "total": round(median([r[2] for r in runs]), 2)}}
    from benchmarks.common import machine
    result["machine"] = machine()
    print(json.dumps(result))
    if not args.no_write:
        write_result("startup", result)


if __name__ == "__main__":
    main()
