"""Export to a TF Serving SavedModel that answers from raw bytes.

Layout: ``base_dir/<version>/`` (integer versions, never overwritten), written to
a hidden temporary directory and renamed into place, so a server polling
``base_dir`` never sees half a model.

Signatures:
- ``serving_default``: DT_STRING ``[None]`` per modality (PNG/JPEG/BMP/GIF bytes,
  WAV bytes, UTF-8 text; empty = absent) -> ``scores`` float32, ``classes``
  (class names) and ``present`` float32 ``[None, num_modalities]``.
- ``features``: the preprocessed tensors (what ``model.preprocess`` returns) in,
  the same outputs out.
- ``embed`` (contrastive models): raw inputs as above -> ``<modality>_embedding``
  float32 ``[None, dim]`` (L2-normalised; zeros for an absent modality) and
  ``present``; without heads it is also ``serving_default``.

``assets.extra/`` holds ``mmkeras.json`` (see :mod:`mmkeras.export.metadata`) and
``tf_serving_warmup_requests`` (see :mod:`mmkeras.export.warmup`).
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from mmkeras.distribute import cluster, outputs
from mmkeras.export import request_checks
from mmkeras.export import warmup as warmup_requests
from mmkeras.export.metadata import METADATA_FILE, client_op_libraries, export_metadata, read_signatures
from mmkeras.utils.atomic import atomic_path

# The line by which the TensorFlow-backend export process (backend_bridge) gives back the version's path.
BRIDGE_RESULT = "MMKERAS_EXPORTED "


def next_version(base_dir):
    """Returns 1 + the largest integer version directory in ``base_dir`` (1 if none)."""
    base = Path(base_dir)
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.exists() else []
    return max(versions, default=0) + 1


def _outputs(model, predictions, present):
    """Maps model outputs to the signature's named float32 outputs."""
    if not isinstance(predictions, dict):
        predictions = {model.heads[0]["name"]: predictions}
    outputs = {"present": tf.cast(present, tf.float32)}
    for head in model.heads:
        name = head["name"]
        scores = tf.cast(predictions[name], tf.float32)
        outputs[name] = scores
        if head["type"] == "classification":
            key = "classes" if name == "scores" else f"{name}_classes"
            outputs[key] = tf.gather(tf.constant(model.head_class_names(name)), tf.argmax(scores, axis=-1))
    return outputs


def build_serving_functions(model, limits=None):
    """Returns ``{signature name: (fn, input_signature)}`` for the model.

    Every fn returns a dict of named tensors (the signature's output keys), float32
    for scores whatever the model's dtype policy. Add a signature by adding an entry.
    Requests are checked before preprocessing and features before the model
    (:mod:`mmkeras.export.request_checks`); ``limits`` overrides the preset's limits
    (see :func:`mmkeras.modalities.limits.resolve_limits`).
    """
    modalities = list(model.modalities)
    shapes = model.preprocessor.feature_shapes()
    limits = model.preprocessor.limits(limits)
    rules = request_checks.feature_rules(model)

    def checked_features(raw):
        """Raw request tensors -> features, checked before preprocessing and before the model."""
        raw = request_checks.check_raw_request(dict(zip(modalities, raw)), limits["max_examples"])
        features = model.preprocessor.preprocess_batch(raw, limits=limits)
        return request_checks.check_some_modality_used(features, modalities)

    def checked_feature_inputs(tensors):
        return request_checks.check_features_request(dict(zip(list(shapes), tensors)), shapes, rules,
                                                     limits["max_examples"])

    def serve_raw(*raw):
        features = checked_features(raw)
        return _outputs(model, model(features, training=False), features["present"])

    def serve_features(*tensors):
        features = checked_feature_inputs(tensors)
        outputs = _outputs(model, model(features, training=False), features["present"])
        return request_checks.check_finite_outputs(outputs, features, rules)

    raw_signature = [tf.TensorSpec([None], tf.string, name=m) for m in modalities]
    feature_signature = [
        tf.TensorSpec((None,) + tuple(shape), tf.as_dtype(dtype), name=name) for name, (shape, dtype) in shapes.items()
    ]
    functions = {"serving_default": (serve_raw, raw_signature), "features": (serve_features, feature_signature)}
    if hasattr(model, "embed_features"):  # a shared-embedding (contrastive) model
        def serve_embed(*raw):
            # "<modality>_embedding" [B, D] float32 (zeros where absent) and "present".
            return model.embed_features(checked_features(raw))

        functions["embed"] = (serve_embed, raw_signature)
        if not model.heads:  # no scores to serve: the default answer is the embeddings too
            functions["serving_default"] = functions["embed"]
            def embed_features(*tensors):
                features = checked_feature_inputs(tensors)
                return request_checks.check_finite_outputs(model.embed_features(features), features)

            functions["features"] = (embed_features, feature_signature)
    return functions


def export_saved_model(model, base_dir, version=None, overwrite=False, warmup_examples=None, warmup=True,
                       limits=None, strategy=None):
    """Exports ``model`` for TF Serving under ``base_dir/<version>``.

    Under another Keras backend (JAX), the model is saved as ``.keras`` and exported
    by a TensorFlow-backend child process (:mod:`mmkeras.export.backend_bridge`): the
    same SavedModel, a TensorFlow graph from raw bytes to scores.

    In a multi-worker ``tf.distribute`` job every worker calls it (the export reads
    mirrored variables) and only the chief keeps the result; the others export into a
    private temporary directory that is removed, and get None.

    Args:
        model: a :class:`~mmkeras.models.MultimodalModel`.
        base_dir: str or Path. The model's base path (``--model_base_path``).
        version: int or None. Defaults to the next free integer version.
        overwrite: bool. Refuse (False, default) or replace an existing version.
        warmup_examples: dict or None. A few raw examples (``{"image": [png, ...],
            "audio": [...], "text": [...]}``, like ``model.predict`` takes) written
            as TF Serving warm-up requests; they are run once before export, since
            a failing warm-up record stops TF Serving from loading the version.
            Default: a tiny generated example per modality, plus each modality absent.
        warmup: bool. Write ``assets.extra/tf_serving_warmup_requests`` at all.
        limits: dict or None. Limits for this export, overriding the preset's
            (``{"max_examples": 64, "image": {"max_pixels": 10**6}}``; see
            :mod:`mmkeras.modalities.limits` for every limit and its default).
            The effective limits are recorded in ``assets.extra/mmkeras.json``.
        strategy: a ``tf.distribute.Strategy`` or None (the model's own).

    Returns:
        str or None: the path of the written version directory; None on a
        multi-worker job's non-chief workers.

    Raises:
        FileExistsError: when ``version`` exists and ``overwrite`` is False.
        ValueError: when a warm-up example is malformed or fails at serving, or a
            limit is unknown or not a positive integer.

    Example:
    ```python
    path = mmkeras.export_saved_model(model, "saved_models/demo")  # "saved_models/demo/1"
    served = tf.saved_model.load(path).signatures["serving_default"]
    served(image=tf.constant([png]), audio=tf.constant([wav]), text=tf.constant(["a caption"]))
    ```
    """
    options = {"version": version, "overwrite": overwrite, "warmup_examples": warmup_examples, "warmup": warmup,
               "limits": limits}
    if keras.backend.backend() != "tensorflow":
        # Under JAX, ExportArchive runs the endpoint through jax2tf, which takes numeric arrays only: our raw
        # string inputs and TF preprocessing fail there (keras-team/keras#19134). So a TensorFlow process exports.
        return _export_in_tensorflow_process(model, base_dir, **options)
    if cluster.is_chief(strategy or cluster.model_strategy(model)):
        return _export_version(model, base_dir, **options)
    tmp = outputs.worker_temp_dir("export")
    _export_version(model, tmp, **options)
    shutil.rmtree(tmp, ignore_errors=True)
    return None


def _export_in_tensorflow_process(model, base_dir, *, version, overwrite, warmup_examples, warmup, limits):
    """``export_saved_model``'s arguments, run by a TensorFlow-backend child process; returns its path.

    Raises:
        RuntimeError: the child failed; the message ends with its error output.
    """
    with tempfile.TemporaryDirectory(prefix="mmkeras-export-") as tmp:
        model_path = os.path.join(tmp, "model.keras")
        model.save(model_path)
        rows = None
        if warmup and warmup_examples is not None:
            rows = {m: [base64.b64encode(v).decode("ascii") for v in values]
                    for m, values in warmup_requests.normalise_warmup_examples(model, warmup_examples).items()}
        request = {"model": model_path, "base_dir": os.path.abspath(os.fspath(base_dir)), "version": version,
                   "overwrite": overwrite, "warmup": warmup, "warmup_examples": rows, "limits": limits}
        request_path = os.path.join(tmp, "request.json")
        with open(request_path, "w") as f:
            json.dump(request, f)
        root = str(Path(__file__).resolve().parents[2])  # the child imports this mmkeras
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([sys.executable, "-m", "mmkeras.export.backend_bridge", request_path], env=env,
                              capture_output=True, text=True)
    result = [line for line in proc.stdout.splitlines() if line.startswith(BRIDGE_RESULT)]
    if proc.returncode != 0 or not result:
        raise RuntimeError(f"export_saved_model: this process runs Keras on {keras.backend.backend()!r}, so the "
                           f"model was exported by a TensorFlow-backend process, which failed (exit "
                           f"{proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(result[-1][len(BRIDGE_RESULT):])


def _export_version(model, base_dir, version, overwrite, warmup_examples, warmup, limits):
    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    effective_limits = model.preprocessor.limits(limits)  # fails early on a bad limit
    version = int(version) if version is not None else next_version(base)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = base / str(version)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; TF Serving versions are immutable "
                              f"(pass another version or overwrite=True)")
    warmup_rows = None
    if warmup:
        examples = warmup_requests.default_warmup_examples(model) if warmup_examples is None else warmup_examples
        warmup_rows = warmup_requests.normalise_warmup_examples(model, examples)
    # Non-numeric name (.tmp-mmkeras-...): TF Serving ignores it while it is being written.
    with atomic_path(final, move=lambda src, dst: _move_into_place(Path(src), Path(dst), overwrite)) as tmp_name:
        tmp = Path(tmp_name)
        archive = keras.export.ExportArchive()
        archive.track(model)
        for layer in model.preprocessor.state_layers():  # e.g. the text vocabulary's lookup table
            if not layer.built:
                layer(tf.constant([""]))  # adapt() alone leaves it unbuilt; track() needs it built
            archive.track(layer)
        endpoints = {name: archive.add_endpoint(name=name, fn=fn, input_signature=signature)
                     for name, (fn, signature) in build_serving_functions(model, limits).items()}
        warmup_features = None
        if warmup_rows is not None:
            # Runs (and traces, once) the graph being exported: a failing warm-up record
            # would make TF Serving refuse the version, so refuse it here instead.
            warmup_features = warmup_requests.check_warmup_examples(
                model, warmup_rows, endpoints["serving_default"], endpoints.get("features"), effective_limits)
        archive.write_out(str(tmp), verbose=False)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        records = None
        if warmup_rows is not None:
            records = warmup_requests.write_warmup_requests(
                extra / warmup_requests.WARMUP_FILE, warmup_rows, list(model.modalities), features=warmup_features)
        metadata = export_metadata(model, signatures=read_signatures(tmp), warmup_records=records,
                                   limits=effective_limits, op_libraries=client_op_libraries(tmp))
        (extra / METADATA_FILE).write_text(json.dumps(metadata, indent=1, default=str))
    return str(final)


def _move_into_place(tmp, final, overwrite):
    """Renames ``tmp`` to ``final``; the rename fails if another export took the version meanwhile."""
    old = None
    if overwrite and final.exists():
        # Move the old version aside (one rename) rather than deleting it file by file under the server.
        old = final.parent / f".old-{final.name}-{uuid.uuid4().hex}"
        os.rename(final, old)
    try:
        os.rename(tmp, final)  # POSIX: fails on an existing non-empty directory, never merges
    except OSError as err:
        if old is not None:
            os.rename(old, final)
        raise FileExistsError(f"{final} was created by another export while this one was written; "
                              f"TF Serving versions are immutable") from err
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
