"""Model code is backend-agnostic: every registered part builds and trains a step under JAX.

Presets are configs over the registered parts, so a set of presets that together
use every tower, the contrastive objective and modality dropout covers the tower
code; compiling all 20-odd presets cost ~270 s of XLA on CI for no extra coverage.
Fusion blocks those presets leave out train on one cheap carrier preset with the
block swapped in: one training step of av_concat_small cost 32 s of CPU under JAX
(XLA compile of its augmentation and towers), of the carrier 9 s. XLA compilation
dominates the cost and is mostly single-threaded, so the runs are split over two
worker processes (one per core on the 2-core CI machine).
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
for name, fusion in json.loads(sys.argv[1]):
    preset = mmkeras.get_preset(name)
    if fusion is not None:
        preset["fusion"] = fusion
    if "contrastive" in preset:
        model = mmkeras.build_model(preset)  # no labels: the contrastive loss is built in
        logs = model.train_on_batch(random_features(model, batch=4), return_dict=True)
    else:
        model = mmkeras.build_model(preset, num_classes=3)
        batch = 1 if name == "reference_base" else 2
        logs = model.train_on_batch(random_features(model, batch=batch), np.arange(batch) % 3, return_dict=True)
    results[name if fusion is None else f"{name}+{fusion['type']}"] = float(logs["loss"])
print("RESULTS " + json.dumps(results))
"""
# Two small conv towers, no augmentation: the cheapest two-modality preset to compile.
CARRIER = "image_audio_small"


def _features(preset):
    """The parts a preset exercises: tower and fusion keys, contrastive, modality dropout."""
    used = {m["tower"]["type"] for m in preset["modalities"].values()}
    used.add("contrastive" if "contrastive" in preset else preset.get("fusion", {}).get("type", "fusion/concat"))
    if preset.get("modality_dropout"):
        used.add("modality_dropout")
    return used


def covering_runs():
    """Runs ``(preset, fusion config or None)`` that together train every part (greedy set cover).

    Every tower, fusion block, the contrastive objective and modality dropout must
    be used by some preset. Presets are chosen to cover the towers (but the
    carrier's), the contrastive objective and modality dropout (ties go to a preset
    other than reference_base, whose 40M parameters only add compile time, then to
    the shortest name); each fusion block they leave out then trains on
    :data:`CARRIER` with the fusion config of the first preset (by name) that uses it.
    """
    import mmkeras
    from mmkeras.fusion import FUSIONS
    from mmkeras.towers import TOWERS

    fusions = set(FUSIONS.keys())
    features = {name: _features(mmkeras.get_preset(name)) for name in sorted(mmkeras.list_presets())}
    missing = (set(TOWERS.keys()) | fusions | {"contrastive", "modality_dropout"}) - set().union(*features.values())
    assert not missing, f"no preset uses {sorted(missing)}: add one so the JAX check covers it"
    # The carrier runs at the end train the carrier's towers.
    needed = (set(TOWERS.keys()) | {"contrastive", "modality_dropout"}) - features[CARRIER]
    chosen = []
    while needed:
        best = max(features, key=lambda n: (len(features[n] & needed), "base" not in n, -len(n)))
        chosen.append(best)
        needed -= features[best]
    left = sorted(fusions - set().union(*(features[n] for n in chosen)))
    carried = [(CARRIER, mmkeras.get_preset(next(n for n in features if key in features[n]))["fusion"])
               for key in left]
    return [(name, None) for name in sorted(chosen)] + (carried or [(CARRIER, None)])


def test_every_part_trains_a_step_under_jax():
    pytest.importorskip("jax")

    runs = covering_runs()
    env = {**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    workers = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(runs[i::2])], env=env, cwd=root,
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
    assert set(results) == {name if fusion is None else f"{name}+{fusion['type']}" for name, fusion in runs}
    assert all(v == v and abs(v) < 1e4 for v in results.values()), results
