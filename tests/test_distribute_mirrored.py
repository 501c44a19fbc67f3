"""MirroredStrategy over 2 logical CPU devices: mirrored variables, fit/evaluate/predict, same result as 1 device.

Runs tests/distribute_workers/mirrored.py in a subprocess: logical devices must be
configured before TensorFlow initialises, which other tests in this process do.
"""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    init = str(tmp_path_factory.mktemp("mirrored") / "init.weights.h5")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "distribute_workers", "mirrored.py"), init],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_variables_are_mirrored_on_both_devices(result):
    assert result["replicas"] == 2
    assert result["per_replica_batch"] == 4  # global batch 8 over 2 replicas
    assert result["variable_type"] == "MirroredVariable"
    assert [d.rsplit(":", 2)[-2:] for d in result["variable_devices"]] == [["CPU", "0"], ["CPU", "1"]]


def test_same_result_as_default_strategy_with_same_global_batch(result):
    assert result["max_weight_diff"] < 1e-5
    assert result["max_predict_diff"] < 1e-5
    assert result["eval"]["loss"] == pytest.approx(result["ref_eval"]["loss"], abs=1e-5)
    assert result["eval"]["accuracy"] == pytest.approx(result["ref_eval"]["accuracy"], abs=1e-6)


@pytest.mark.parametrize("policy,optimizer", [("mixed_float16", "LossScaleOptimizer"), ("mixed_bfloat16", "SGD")])
def test_mixed_precision_under_mirrored(result, policy, optimizer):
    mp = result[policy]
    assert mp["optimizer"] == optimizer  # float16 gets dynamic loss scaling
    assert mp["variable_dtype"] == "float32" and mp["output_dtype"] == "float32"
    assert all(0.0 < loss < 5.0 for loss in mp["loss"]) and 0.0 < mp["eval_loss"] < 5.0
