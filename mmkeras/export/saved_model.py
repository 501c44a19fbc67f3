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
"""

import json
import os
import shutil
import uuid
from pathlib import Path

import keras
import tensorflow as tf

METADATA_FILE = "mmkeras.json"


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
            outputs[key] = tf.gather(tf.constant(model.class_names(name)), tf.argmax(scores, axis=-1))
    return outputs


def _check_some_modality_present(present):
    """An example with every modality empty has no evidence: INVALID_ARGUMENT, never a guess."""
    ok = tf.reduce_all(tf.reduce_max(present, axis=1) > 0)
    return tf.debugging.Assert(
        ok, ["mmkeras: every input (image/audio/text) is empty in at least one example; "
             "send at least one non-empty modality per example"])


def build_serving_functions(model):
    """Returns ``{signature name: (fn, input_signature)}`` for the model."""
    modalities = list(model.modalities)
    shapes = model.preprocessor.feature_shapes()

    def serve_raw(*raw):
        features = model.preprocessor.preprocess_batch(dict(zip(modalities, raw)))
        with tf.control_dependencies([_check_some_modality_present(features["present"])]):
            present = tf.identity(features["present"])
        return _outputs(model, model({**features, "present": present}, training=False), present)

    def serve_features(*tensors):
        features = dict(zip(list(shapes), tensors))
        return _outputs(model, model(features, training=False), features["present"])

    raw_signature = [tf.TensorSpec([None], tf.string, name=m) for m in modalities]
    feature_signature = [
        tf.TensorSpec((None,) + tuple(shape), tf.as_dtype(dtype), name=name) for name, (shape, dtype) in shapes.items()
    ]
    return {"serving_default": (serve_raw, raw_signature), "features": (serve_features, feature_signature)}


def export_metadata(model):
    """What a client needs to know: inputs, preprocessing, classes, versions."""
    return {
        "mmkeras_version": __import__("mmkeras").__version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "modalities": list(model.modalities),
        "inputs": {m: {"dtype": "DT_STRING", "shape": [-1], "empty_means": "absent",
                       "preprocessing": model.mm_config["modalities"][m]["preprocessing"]}
                   for m in model.modalities},
        "text_vocabulary_size": (model.preprocessor.text_vectorizer.vocabulary_size()
                                 if model.preprocessor.text_vectorizer is not None else None),
        "heads": model.heads,
        "preset": model.mm_config,
    }


def export_saved_model(model, base_dir, version=None, overwrite=False):
    """Exports ``model`` for TF Serving under ``base_dir/<version>``.

    Args:
        model: a :class:`~mmkeras.models.MultimodalModel`.
        base_dir: str or Path. The model's base path (``--model_base_path``).
        version: int or None. Defaults to the next free integer version.
        overwrite: bool. Refuse (False, default) or replace an existing version.

    Returns:
        str: the path of the written version directory.

    Raises:
        FileExistsError: when ``version`` exists and ``overwrite`` is False.

    Example:
    ```python
    path = mmkeras.export_saved_model(model, "saved_models/demo")  # "saved_models/demo/1"
    served = tf.saved_model.load(path).signatures["serving_default"]
    served(image=tf.constant([png]), audio=tf.constant([wav]), text=tf.constant(["a caption"]))
    ```
    """
    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    version = int(version) if version is not None else next_version(base)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = base / str(version)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; TF Serving versions are immutable "
                              f"(pass another version or overwrite=True)")
    # Non-numeric name: TF Serving ignores it while it is being written.
    tmp = base / f".tmp-{version}-{uuid.uuid4().hex}"
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        if model.preprocessor.text_vectorizer is not None:
            archive.track(model.preprocessor.text_vectorizer)  # its lookup table must be saved
        for name, (fn, signature) in build_serving_functions(model).items():
            archive.add_endpoint(name=name, fn=fn, input_signature=signature)
        archive.write_out(str(tmp), verbose=False)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        (extra / METADATA_FILE).write_text(json.dumps(export_metadata(model), indent=1, default=str))
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(final)
