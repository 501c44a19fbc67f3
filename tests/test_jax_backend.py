"""Model code is backend-agnostic and TensorFlow-free: every preset builds and every part trains under JAX
in a process where ``import tensorflow`` fails.

Presets are configs over the registered parts, so a set of presets that together
use every tower, fusion block, the contrastive and VAE objectives, modality dropout and unimodal heads
covers the model code; compiling all 20-odd presets cost ~270 s of XLA on CI for
no extra coverage. A tower no preset uses yet (the pretrained-architecture towers)
trains a step through its part case (tests/part_cases.py) under a Dense head. Fusion
blocks the chosen presets leave out train on one cheap carrier preset with the block
swapped in: one training step of av_concat_small cost 32 s of CPU under JAX (XLA
compile of its augmentation and towers), of the carrier 9 s. Presets with pretrained towers
build (weights loaded, TensorFlow-free) but do not train here.
XLA compilation dominates the cost and is mostly single-threaded, so the presets
are split over two worker processes (one per core on the 2-core CI machine).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r"""
import importlib.abc, json, sys


class BlockTensorFlow(importlib.abc.MetaPathFinder):
    # Any `import tensorflow...` fails, as where it is not installed. (sys.modules["tensorflow"] = None
    # would also block it, but Keras reads `"tensorflow" in sys.modules` as "TensorFlow is loaded".)
    def find_spec(self, name, path=None, target=None):
        if name.startswith("tensorflow"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)


sys.meta_path.insert(0, BlockTensorFlow())
import numpy as np, keras
assert keras.backend.backend() == "jax", keras.backend.backend()
import mmkeras
from tests.conftest import random_features
mode, names = sys.argv[1], sys.argv[2:]
results = {}
for name in names:
    if name.startswith("tower:"):  # a registered tower no preset uses: its part case + a Dense head
        from tests.part_cases import TOWER_CASES
        config, x = TOWER_CASES[name[len("tower:"):]]
        inputs = keras.Input(x.shape[1:], dtype=str(x.dtype))
        tower = mmkeras.towers.build_tower({"type": name[len("tower:"):], **config})
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(tower(inputs)["pooled"]))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        results[name] = float(model.train_on_batch(x, np.arange(len(x)) % 3, return_dict=True)["loss"])
        continue
    preset = mmkeras.get_preset(name.split("+")[0])
    if "+" in name:  # "<carrier>+<fusion key>": the carrier preset with that block swapped in
        key = name.split("+")[1]
        preset["fusion"] = next(p["fusion"] for p in map(mmkeras.get_preset, sorted(mmkeras.list_presets()))
                                if p.get("fusion", {}).get("type") == key)
    unlabelled = "contrastive" in preset or "vae" in preset  # trained on inputs alone
    model = mmkeras.build_model(preset, **({} if unlabelled else {"num_classes": 3}))
    assert model.preprocessor is None, name  # built without the TensorFlow preprocessor
    if mode == "build":
        results[name] = model.count_params()
        continue
    batch = 1 if name == "reference_base" else 2
    labels = () if unlabelled else (np.arange(batch) % 3,)  # contrastive, VAE: the loss is built in
    logs = model.train_on_batch(random_features(model, batch=batch * (2 if unlabelled else 1)), *labels,
                                return_dict=True)
    assert model.jit_compile is True, f"{name} trains without jit under JAX (a layer has supports_jit=False)"
    results[name] = float(logs["loss"])
assert not [m for m in sys.modules if m.startswith("tensorflow")], "something imported TensorFlow"
print("RESULTS " + json.dumps(results))
"""


# XLA still compiles every step in full (jit stays on), with LLVM's costly optimisation passes off: what runs
# is the same program, and one step needs no fast machine code. Measured on two presets' steps
# (av_robust_small, image_audio_small+fusion/perceiver): 47.3 -> 24.4 s of CPU.
FAST_XLA_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
# Two small conv towers, no augmentation: the cheapest two-modality preset to compile.
CARRIER = "image_audio_small"


def _features(preset):
    """The parts a preset exercises: tower and fusion keys, contrastive, VAE, modality dropout, unimodal heads."""
    used = {m["tower"]["type"] for m in preset["modalities"].values()}
    task = next((key for key in ("contrastive", "vae") if key in preset), None)
    used.add(task or preset.get("fusion", {}).get("type", "fusion/concat"))
    if preset.get("modality_dropout"):
        used.add("modality_dropout")
    if preset.get("auxiliary_heads"):
        used.add("auxiliary_heads")
    return used


def covering_presets():
    """A small set of presets using every tower, the contrastive and VAE objectives, modality dropout and unimodal heads
    (greedy set cover), then ``<carrier>+<fusion key>`` for each fusion block they leave out and
    ``tower:<key>`` for the towers no preset uses.

    Ties go to a preset other than reference_base (its 40M parameters only add compile
    time), then to the shortest name.
    """
    import mmkeras
    from mmkeras.fusion import FUSIONS
    from mmkeras.towers import TOWERS
    from tests.helpers import uses_pretrained_weights

    def library(registry):  # parts other test files register in this process are not presets' business
        return {k for k in registry if registry.get(k).__module__.startswith("mmkeras.")}

    fusions = library(FUSIONS)
    # Presets with pretrained towers (MiniLM's 22.7M parameters, EfficientNet at 224x224) only build here
    # (test_every_preset_builds_without_tensorflow); their towers train a step through their part cases.
    features = {name: _features(mmkeras.get_preset(name)) for name in sorted(mmkeras.list_presets())
                if not uses_pretrained_weights(mmkeras.get_preset(name))}
    used = set().union(*features.values())
    towers_alone = sorted(library(TOWERS) - used)
    missing = (fusions | {"contrastive", "vae", "modality_dropout", "auxiliary_heads"}) - used
    assert not missing, f"no preset uses {sorted(missing)}: add one so the JAX check covers it"
    needed = (library(TOWERS) - set(towers_alone) | {"contrastive", "vae", "modality_dropout", "auxiliary_heads"}) \
        - features[CARRIER]
    chosen = []
    while needed:
        best = max(features, key=lambda n: (len(features[n] & needed), "base" not in n, -len(n)))
        chosen.append(best)
        needed -= features[best]
    left = sorted(fusions - set().union(*(features[n] for n in chosen)))
    carried = [f"{CARRIER}+{key}" for key in left] or [CARRIER]  # the carrier's towers train either way
    return sorted(chosen) + carried + [f"tower:{key}" for key in towers_alone]


def _run_without_tensorflow(jobs):
    """Runs SCRIPT in subprocesses where TensorFlow cannot be imported; returns the merged results."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "2", "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {FAST_XLA_COMPILE}".strip()}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    workers = [subprocess.Popen([sys.executable, "-c", SCRIPT, *job], env=env, cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for job in jobs]
    results = {}
    try:
        for proc in workers:
            out, err = proc.communicate(timeout=2400)  # a bound: 1,146 s measured on a loaded 2-core machine
            assert proc.returncode == 0, err[-4000:]
            line = next(line for line in out.splitlines() if line.startswith("RESULTS "))
            results.update(json.loads(line[len("RESULTS "):]))
    finally:
        for proc in workers:
            proc.kill()
    return results


def test_every_preset_builds_without_tensorflow():
    """``import mmkeras`` and every preset's backbone + task build where TensorFlow cannot be imported."""
    pytest.importorskip("jax")
    import mmkeras

    names = sorted(mmkeras.list_presets())
    results = _run_without_tensorflow([["build", *names]])
    assert set(results) == set(names) and all(v > 0 for v in results.values())


def test_every_part_trains_a_step_under_jax_without_tensorflow():
    pytest.importorskip("jax")

    names = covering_presets()
    results = _run_without_tensorflow([["train", *names[i::2]] for i in range(2)])
    assert set(results) == set(names)
    assert all(v == v and abs(v) < 1e4 for v in results.values()), results


RAW_UNDER_JAX = r"""
import json, os, tempfile, numpy as np, keras, mmkeras
from tests._av_helpers import tiny_av_preset, av_subset
assert keras.backend.backend() == "jax"
x, y = av_subset(16)
model = mmkeras.build_model(tiny_av_preset("fusion/late", auxiliary_heads=True, gradient_modulation=True),
                            num_classes=10, seed=0)
head = np.asarray(model.auxiliary_head("audio").weights[0]).copy()
out = tempfile.mkdtemp()
backup = mmkeras.distribute.BackupAndRestore(os.path.join(out, "backup"), delete_checkpoint=False)
history = model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[backup])
scores = model.predict(x, verbose=0)
path = mmkeras.export_saved_model(model, os.path.join(out, "served"))
import tensorflow as tf
served = tf.saved_model.load(path).signatures["serving_default"]
answer = served(image=tf.constant(x["image"][:4]), audio=tf.constant(x["audio"][:4]))["scores"].numpy()
with open(os.path.join(out, "backup", "latest.json")) as f:
    backed_up = json.load(f)["epoch"]
print("RESULTS " + json.dumps({"loss": history.history["loss"][-1], "jit": model.jit_compile,
                               "unimodal_head_trained": not np.allclose(head, model.auxiliary_head("audio").weights[0]),
                               "coefficients": np.asarray(model.gradient_modulation.coefficients).tolist(),
                               "scores": list(scores.shape), "backed_up_epoch": backed_up, "export": path,
                               "served_max_diff": float(np.abs(answer - scores[:4]).max())}))
"""


def test_raw_inputs_train_under_jax_where_tensorflow_is_installed(shared_data_dir):
    """A JAX user with TensorFlow installed fits raw PNG/WAV bytes: the tf.data pipeline feeds the JAX trainer
    (it used to read ``distribute_strategy``, which only TensorFlow-backend models have). The model carries
    unimodal heads, which train under jit too, and gradient modulation, whose coefficients (set in
    ``compute_loss``) come back from the JAX trainer's stateless step. The backup callback (which
    ``mmkeras train`` always adds) writes its backup, and ``export_saved_model`` gives a SavedModel (made by a
    TensorFlow-backend child process) whose answers from raw bytes are the JAX model's."""
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", RAW_UNDER_JAX], env=env, cwd=root, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULTS "))[8:])
    assert results["jit"] is True and results["unimodal_head_trained"] and results["scores"] == [16, 10]
    assert min(results["coefficients"]) < 1.0 and max(results["coefficients"]) == 1.0, results["coefficients"]
    assert np.isfinite(results["loss"])
    assert results["backed_up_epoch"] == 1 and results["export"].endswith(os.path.join("served", "1"))
    assert results["served_max_diff"] < 1e-4, results["served_max_diff"]


def test_the_tensorflow_export_process_names_its_failure(tmp_path):
    """The export a JAX process hands to a TensorFlow-backend child: a child that fails is reported with its
    error, not as a missing path."""
    import mmkeras
    from mmkeras.export.saved_model import _export_in_tensorflow_process
    from tests._av_helpers import tiny_av_preset

    model = mmkeras.build_model(tiny_av_preset("fusion/late"), num_classes=3, seed=0)
    blocked = tmp_path / "a_file"
    blocked.write_text("not a directory")
    with pytest.raises(RuntimeError, match=r"(?s)exported by a TensorFlow-backend process, which failed.*a_file"):
        _export_in_tensorflow_process(model, blocked, version=None, overwrite=False, warmup_examples=None,
                                      warmup=True, limits=None)
