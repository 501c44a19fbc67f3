"""Model code is backend-agnostic: every registered part builds and trains a step under JAX.

Presets are configs over the registered parts, so a set of presets that together
use every tower, fusion block, the contrastive objective and modality dropout
covers the model code; compiling all 20-odd presets cost ~270 s of XLA on CI for
no extra coverage. A tower no preset uses yet (the pretrained-architecture towers)
trains a step through its part case (tests/part_cases.py) under a Dense head.
XLA compilation dominates the cost and is mostly single-threaded, so the presets
are split over two worker processes (one per core on the 2-core CI machine).
"""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys, numpy as np, keras
assert keras.backend.backend() == "jax", keras.backend.backend()
import mmkeras
from tests.conftest import random_features
results = {}
for name in sys.argv[1:]:
    if name.startswith("tower:"):  # a registered tower no preset uses: its part case + a Dense head
        from tests.part_cases import TOWER_CASES
        config, x = TOWER_CASES[name[len("tower:"):]]
        inputs = keras.Input(x.shape[1:], dtype=str(x.dtype))
        tower = mmkeras.towers.build_tower({"type": name[len("tower:"):], **config})
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(tower(inputs)["pooled"]))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        logs = model.train_on_batch(x, np.arange(len(x)) % 3, return_dict=True)
    elif "contrastive" in mmkeras.get_preset(name):
        model = mmkeras.build_model(name)  # no labels: the contrastive loss is built in
        logs = model.train_on_batch(random_features(model, batch=4), return_dict=True)
    else:
        model = mmkeras.build_model(name, num_classes=3)
        batch = 1 if name == "reference_base" else 2
        logs = model.train_on_batch(random_features(model, batch=batch), np.arange(batch) % 3, return_dict=True)
    results[name] = float(logs["loss"])
print("RESULTS " + json.dumps(results))
"""


def _features(preset):
    """The parts a preset exercises: tower and fusion keys, contrastive, modality dropout."""
    used = {m["tower"]["type"] for m in preset["modalities"].values()}
    used.add("contrastive" if "contrastive" in preset else preset.get("fusion", {}).get("type", "fusion/concat"))
    if preset.get("modality_dropout"):
        used.add("modality_dropout")
    return used


def covering_presets():
    """A small set of presets using every part (greedy set cover), then ``tower:<key>`` for the
    towers no preset uses.

    Ties go to a preset other than reference_base (its 40M parameters only add compile
    time), then to the shortest name.
    """
    import mmkeras
    from mmkeras.fusion import FUSIONS
    from mmkeras.towers import TOWERS

    needed = set(TOWERS.keys()) | set(FUSIONS.keys()) | {"contrastive", "modality_dropout"}
    features = {name: _features(mmkeras.get_preset(name)) for name in sorted(mmkeras.list_presets())}
    towers_alone = sorted(set(TOWERS.keys()) - set().union(*features.values()))
    needed -= set(towers_alone)
    missing = needed - set().union(*features.values())
    assert not missing, f"no preset uses {sorted(missing)}: add one so the JAX check covers it"
    chosen = []
    while needed:
        best = max(features, key=lambda n: (len(features[n] & needed), "base" not in n, -len(n)))
        chosen.append(best)
        needed -= features[best]
    return sorted(chosen) + [f"tower:{key}" for key in towers_alone]


def test_every_part_trains_a_step_under_jax():
    pytest.importorskip("jax")

    names = covering_presets()
    env = {**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    workers = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, *names[i::2]], env=env, cwd=root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    results = {}
    try:
        for proc in workers:
            out, err = proc.communicate(timeout=1200)
            assert proc.returncode == 0, err[-4000:]
            line = next(line for line in out.splitlines() if line.startswith("RESULTS "))
            results.update(json.loads(line[len("RESULTS "):]))
    finally:
        for proc in workers:
            proc.kill()
    assert set(results) == set(names)
    assert all(v == v and abs(v) < 1e4 for v in results.values()), results
