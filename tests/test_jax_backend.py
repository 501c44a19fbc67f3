"""Model code is backend-agnostic: every preset builds and trains a step under JAX."""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, numpy as np, keras
assert keras.backend.backend() == "jax", keras.backend.backend()
import mmkeras
from tests.conftest import random_features
results = {}
for name in sorted(n for n in mmkeras.list_presets() if "contrastive" not in mmkeras.get_preset(n)):
    model = mmkeras.build_model(name, num_classes=3)
    batch = 1 if name == "reference_base" else 2
    logs = model.train_on_batch(random_features(model, batch=batch), np.arange(batch) % 3, return_dict=True)
    results[name] = float(logs["loss"])
print("RESULTS " + json.dumps(results))
"""


def test_every_preset_trains_a_step_under_jax():
    pytest.importorskip("jax")
    import mmkeras

    env = {**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=root, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULTS "))
    results = json.loads(line[len("RESULTS "):])
    assert set(results) == {n for n in mmkeras.list_presets() if "contrastive" not in mmkeras.get_preset(n)}
    assert all(v == v and abs(v) < 1e4 for v in results.values()), results
