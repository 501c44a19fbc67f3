"""Entry point of one worker started by :mod:`mmkeras.distribute.launch` (not public API)."""

import importlib
import os
import pickle
import runpy
import sys


def _resolve(spec):
    target, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if target.endswith(".py"):
        if not name:
            return None, target
        module = runpy.run_path(target, run_name="__mmkeras_worker__")
        return module[name], None
    obj = importlib.import_module(target)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj, None


def main():
    spec = os.environ["MMKERAS_WORKER_FN"]
    with open(os.environ["MMKERAS_WORKER_ARGS"], "rb") as f:
        args, kwargs = pickle.load(f)
    fn, script = _resolve(spec)
    if script is not None:
        sys.argv = [script, *map(str, args)]
        runpy.run_path(script, run_name="__main__")
        value = None
    else:
        value = fn(*args, **kwargs)
    with open(os.environ["MMKERAS_WORKER_RESULT"], "wb") as f:
        pickle.dump(value, f)


if __name__ == "__main__":
    main()
