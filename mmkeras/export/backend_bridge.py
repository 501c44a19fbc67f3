"""Exporting a model that runs under another Keras backend (JAX): in a TensorFlow-backend process.

The SavedModel is one TensorFlow graph holding the preprocessing and the model. Under
JAX, Keras' export converts the serving function with ``jax2tf``, which cannot take the
raw string inputs (PNG/WAV bytes, text), so such a model is saved as a ``.keras`` file
(backend-agnostic) and exported by a child Python process with ``KERAS_BACKEND=tensorflow``:
the same :func:`~mmkeras.export.export_saved_model`, the same SavedModel. The parent side
is ``saved_model._export_in_tensorflow_process``; this module is the child's entry point
(``python -m mmkeras.export.backend_bridge REQUEST.json``).
"""

import base64
import json
import sys


def main(request_path):
    """The child: loads the saved model and exports it as the request says."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"the export process needs KERAS_BACKEND=tensorflow, got {keras.backend.backend()!r}")
    import mmkeras.models  # noqa: F401  (registers the model classes for loading)
    from mmkeras.export.saved_model import BRIDGE_RESULT, export_saved_model

    with open(request_path) as f:
        request = json.load(f)
    rows = request["warmup_examples"]
    examples = None if rows is None else {m: [base64.b64decode(v) for v in values] for m, values in rows.items()}
    path = export_saved_model(keras.saving.load_model(request["model"]), request["base_dir"],
                              version=request["version"], overwrite=request["overwrite"], warmup_examples=examples,
                              warmup=request["warmup"], limits=request["limits"])
    print(BRIDGE_RESULT + json.dumps(path), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
