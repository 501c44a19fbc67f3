"""KerasTuner's state files (oracle, tuner, each trial's ``trial.json``), written atomically.

KerasTuner 1.4 writes them with ``open(path, "w")`` then ``write``: a search
killed between the two leaves an empty ``tuner0.json`` or ``oracle.json``, and
running it again to resume fails with ``Expecting value: line 1 column 1``
(seen in CI: a tune killed as its second trial started; the nearest upstream
report of a tuner that cannot restart after a kill is keras-team/keras-tuner#987,
and no upstream fix for these writes was found). Every KerasTuner
writer goes through ``keras_tuner.src.utils.save_json``, so :func:`install`
replaces that one function with a write through :mod:`mmkeras.utils.atomic`
(the old file stays until the new one is complete), and ``load_json`` with one
whose error names the file and says what to do.
"""

import json

from keras_tuner.src import utils as kt_utils

from mmkeras.utils.atomic import atomic_write_text

_UPSTREAM_SAVE, _UPSTREAM_LOAD = kt_utils.save_json, kt_utils.load_json


def _is_local(path):
    return "://" not in str(path)  # gs:// and the like: KerasTuner's own writer (no rename there)


def save_json(path, obj):
    """KerasTuner's ``save_json`` (same arguments and return value), atomic for local paths."""
    if not _is_local(path):
        return _UPSTREAM_SAVE(path, obj)
    text = json.dumps(obj)
    atomic_write_text(str(path), text)
    return text


def load_json(path):
    """KerasTuner's ``load_json``; a file that is not JSON raises a ValueError naming it."""
    try:
        return _UPSTREAM_LOAD(path)
    except json.JSONDecodeError as e:
        raise ValueError(f"KerasTuner state file {str(path)!r} is not valid JSON ({e}); a run killed while "
                         f"writing it left it cut short (mmkeras before 0.2.0 wrote these files in place): remove that "
                         f"search's directory to start the search again, or tune into a new directory") from e


def install():
    """Routes KerasTuner's JSON reads and writes through this module (idempotent)."""
    kt_utils.save_json, kt_utils.load_json = save_json, load_json
