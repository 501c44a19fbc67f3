"""Tells us when upstream Keras no longer needs mmkeras/distribute/keras_fixes.py.

Runs 2-worker MultiWorkerMirroredStrategy training with the fixes disabled and
expects the known failure (keras-team/keras#20329, tensorflow/tensorflow#72388).
"""

import os
import sys

import keras
import pytest

import mmkeras.distribute
from mmkeras.distribute import keras_fixes

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "distribute_workers"))

import common  # noqa: E402

pytestmark = pytest.mark.multiworker


@pytest.mark.skipif(not keras_fixes.keras_needs_fixes(), reason="this Keras runs unpatched (newer than the gate)")
def test_unpatched_keras_still_fails_under_multi_worker(tmp_path):
    init = str(tmp_path / "init.weights.h5")
    common.build(mixed_precision="float32").save_weights(init)
    job = mmkeras.distribute.start_local(2, os.path.join(HERE, "distribute_workers", "train.py") + ":train",
                                         kwargs=dict(out_dir=str(tmp_path), init_path=init, epochs=1),
                                         env={"MMKERAS_KERAS_FIXES": "0"}, threads_per_worker=1)
    results = job.wait(timeout=420, check=False)
    if all(r.returncode == 0 for r in results):
        pytest.fail(f"Keras {keras.__version__} trains under MultiWorkerMirroredStrategy without mmkeras's fixes: "
                    f"upstream fixed keras-team/keras#20329. Set LAST_BROKEN_KERAS below {keras.__version__} or "
                    f"remove mmkeras/distribute/keras_fixes.py.")
    logs = "\n".join(open(r.log_path).read() for r in results)
    known = ("with an unsupported type (<class 'dict'>) to a Tensor", "reduce", "axis")
    assert known[0] in logs or ("reduce" in logs and "axis" in logs), \
        f"unpatched run failed, but not with the known Keras bug:\n{results[0].log_tail(60)}"
