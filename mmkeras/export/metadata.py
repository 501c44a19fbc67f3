"""What an export tells its clients: ``assets.extra/mmkeras.json`` and :func:`inspect_export`.

The metadata records the preset config, class names, library versions, the limits, the op
libraries a client must load (``client_op_libraries``: ops outside core TensorFlow, such as
tensorflow-text's) and, per signature, the exact inputs a client must send. :func:`inspect_export` reads it
back together with the SignatureDefs in ``saved_model.pb`` (a proto parse, no
graph is loaded), so it is cheap to call on a server's model directory.
"""

import glob
import json
import os
from pathlib import Path

import keras
import tensorflow as tf

from mmkeras.modalities import modality

METADATA_FILE = "mmkeras.json"
# TF Serving must be at least the TensorFlow version that wrote the graph (op versions).
SERVING_REQUIREMENT = "TF Serving {tf} or newer (the TensorFlow version that exported the model)"

_DTYPE_NAMES = {tf.float32: "DT_FLOAT", tf.int32: "DT_INT32", tf.string: "DT_STRING"}


# Custom op libraries an export may use: how a Python client loads them, and which TF Serving
# builds have them. TensorFlow-only processes fail on their ops ("Op type not registered").
OP_LIBRARIES = {
    "tensorflow_text": {
        "load": "import tensorflow_text",
        # tensorflow_serving/model_servers/BUILD: SUPPORTED_TENSORFLOW_OPS has
        # "@org_tensorflow_text//tensorflow_text:ops_lib", linked into tensorflow_model_server.
        "serving": ("tensorflow_model_server (the tensorflow/serving Docker images, the tensorflow-model-server "
                    "apt packages) links every tensorflow-text op in; nothing to install"),
    },
}


def _library_ops(library):
    """Op types registered by an op library's shared objects (empty if it is not installed)."""
    if library != "tensorflow_text":
        return set()
    try:
        import tensorflow_text
    except ImportError:
        return set()
    from tensorflow.python.framework import op_def_registry

    ops = set()
    for so in sorted(glob.glob(os.path.join(os.path.dirname(tensorflow_text.__file__), "python", "ops", "*.so"))):
        module = tf.load_op_library(so)  # already loaded by the import: returns its op wrappers
        ops.update(name for name in dir(module) if name[:1].isupper() and op_def_registry.get(name) is not None)
    return ops


def graph_op_types(version_dir):
    """Every op type in ``saved_model.pb`` (graph and function library; calls of library functions excluded)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    ops, functions = set(), set()
    for meta in proto.meta_graphs:
        ops.update(n.op for n in meta.graph_def.node)
        for fn in meta.graph_def.library.function:
            ops.update(n.op for n in fn.node_def)
            functions.add(fn.signature.name)
    return ops - functions


def client_op_libraries(version_dir):
    """The op libraries a client must load before it can load the export, with the ops it uses from each.

    An op is core when TensorFlow itself defines it (``tf.raw_ops``); every other op
    comes from a library in :data:`OP_LIBRARIES`, or is listed under ``"unknown"``.

    Args:
        version_dir: str or Path. A SavedModel directory.

    Returns:
        dict: library -> sorted op types (``{}`` when core TensorFlow suffices).

    Example:
    ```python
    client_op_libraries("saved_models/minilm/1")  # {"tensorflow_text": ["CaseFoldUTF8", "FastWordpiece..."]}
    ```
    """
    extra = {op for op in graph_op_types(version_dir) if not hasattr(tf.raw_ops, op)}
    found = {}
    for library in OP_LIBRARIES:
        ops = extra & _library_ops(library)
        if ops:
            found[library] = sorted(ops)
            extra -= ops
    if extra:
        found["unknown"] = sorted(extra)
    return found


def op_library_lines(info):
    """What a client must load, as printable lines (``mmkeras inspect`` prints them).

    Args:
        info: dict. An export's metadata (:func:`inspect_export`'s result).

    Returns:
        list of str; one line saying core TensorFlow suffices when no library is needed.
    """
    libraries = info.get("client_op_libraries") or {}
    if not libraries:
        return ["  op libraries: none beyond TensorFlow (a TensorFlow-only client loads it)"]
    lines = []
    for library, ops in libraries.items():
        known = OP_LIBRARIES.get(library)
        if known is None:
            lines.append(f"  ops from no known op library (no client can load them): {', '.join(ops)}")
            continue
        lines += [f"  op library {library}: a Python client must `{known['load']}` before "
                  f"tf.saved_model.load (ops {', '.join(ops)})",
                  f"    TF Serving: {known['serving']}"]
    return lines


def _tf_text_version():
    try:
        import tensorflow_text

        return tensorflow_text.__version__
    except ImportError:  # only WordPiece presets need it
        return None


def export_metadata(model, signatures=None, warmup_records=None, limits=None, op_libraries=None):
    """What a client needs to know: inputs per signature, classes, preprocessing, versions.

    Args:
        model: a :class:`~mmkeras.models.MultimodalModel`.
        signatures: dict or None. What :func:`read_signatures` returns for the export.
        warmup_records: int or None. Number of warm-up records written.
        limits: dict or None. The export's effective limits (default: the model's).
        op_libraries: dict or None. What :func:`client_op_libraries` returns for the export.

    Returns:
        A JSON-serialisable dict.
    """
    classes = {h["name"]: model.head_class_names(h["name"]) for h in model.heads if h["type"] == "classification"}
    return {
        "mmkeras_version": __import__("mmkeras").__version__,
        "tensorflow_version": tf.__version__,
        "tensorflow_text_version": _tf_text_version(),
        "keras_version": keras.__version__,
        "serving_requirement": SERVING_REQUIREMENT.format(tf=tf.__version__),
        "client_op_libraries": op_libraries,
        "model_name": model.name,
        "modalities": list(model.modalities),
        "inputs": {m: {"dtype": "DT_STRING", "shape": [-1], "expects": modality(m).serving_expects,
                       "empty_means": "absent", "rest_value": _rest_value(m),
                       "preprocessing": model.mm_config["modalities"][m]["preprocessing"]}
                   for m in model.modalities},
        "send_every_input": ("TF Serving rejects a request that omits a signature input: send every "
                             "key, with b'' / '' for an absent modality"),
        "signatures": signatures or {},
        "class_names": classes,
        "text_vocabulary_size": (model.preprocessor.text_vectorizer.vocabulary_size()
                                 if getattr(model.preprocessor, "text_vectorizer", None) is not None else None),
        "heads": model.heads,
        "warmup_records": warmup_records,
        "limits": limits or model.preprocessor.limits(),
        "preset": model.mm_config,
    }


def _version_dir(path):
    """A version directory, or the newest integer version under a base directory."""
    path = Path(path)
    if (path / "saved_model.pb").exists():
        return path
    versions = sorted((int(p.name) for p in path.iterdir() if p.is_dir() and p.name.isdigit()),
                      reverse=True) if path.is_dir() else []
    for v in versions:
        if (path / str(v) / "saved_model.pb").exists():
            return path / str(v)
    raise FileNotFoundError(f"{path} is neither a SavedModel directory nor a base directory with "
                            f"integer version subdirectories")


def _dtype_name(enum):
    dtype = tf.dtypes.as_dtype(enum)
    return _DTYPE_NAMES.get(dtype, "DT_" + dtype.name.upper())


def read_signatures(version_dir):
    """``{signature: {"method", "inputs", "outputs"}}`` parsed from ``saved_model.pb`` (no graph load)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    meta = next(m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags)

    def io(infos):
        return {k: {"dtype": _dtype_name(v.dtype), "shape": [d.size for d in v.tensor_shape.dim]}
                for k, v in sorted(infos.items())}

    return {name: {"method": sig.method_name, "inputs": io(sig.inputs), "outputs": io(sig.outputs)}
            for name, sig in sorted(meta.signature_def.items()) if not name.startswith("__")}


def _rest_value(name):
    """How a REST client writes one value of modality ``name``: a JSON string for text, else base64."""
    return '"..."' if modality(name).text_values else '{"b64": "..."}'


def _summary(info):
    lines = [f"mmkeras export {info['path']} (model {info.get('model_name')!r}, version {info['version']})",
             f"  needs {info.get('serving_requirement')}"] + op_library_lines(info)
    for name, sig in info["signatures"].items():
        lines.append(f"  signature {name!r} ({sig['method']}):")
        for k, v in sig["inputs"].items():
            hint = info.get("inputs", {}).get(k, {}).get("expects") if name == "serving_default" else None
            lines.append(f"    in  {k}: {v['dtype']} {v['shape']}" + (f"  <- {hint}; b'' = absent" if hint else ""))
        for k, v in sig["outputs"].items():
            lines.append(f"    out {k}: {v['dtype']} {v['shape']}")
    for head, names in (info.get("class_names") or {}).items():
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        lines.append(f"  classes of {head!r}: {shown}")
    lines.append(f"  {info.get('send_every_input', '')}")
    lines.append("  REST: {\"instances\": [{"
                 + ", ".join(f'"{m}": ' + info.get("inputs", {}).get(m, {}).get("rest_value", '{"b64": "..."}')
                             for m in info.get("modalities", []))
                 + "}]}")
    return "\n".join(lines)


def inspect_export(path, print_summary=True):
    """Describes an export: what a client must send and what it gets back.

    Args:
        path: str or Path. A version directory (``saved_models/demo/3``) or a base
            directory (the newest version is used).
        print_summary: bool. Also print a human-readable summary.

    Returns:
        dict: the export's ``mmkeras.json`` metadata plus ``path``, ``version``,
        ``signatures`` (read from ``saved_model.pb``: method, input and output
        dtypes/shapes), ``warmup_requests`` (whether the warm-up file exists) and
        ``client_op_libraries`` (the op libraries a client must load, e.g.
        ``{"tensorflow_text": ["CaseFoldUTF8", ...]}``; computed from the graph for
        exports that do not record it).

    Raises:
        FileNotFoundError: when ``path`` holds no SavedModel.

    Example:
    ```python
    info = mmkeras.inspect_export("saved_models/demo")
    info["signatures"]["serving_default"]["inputs"]  # {"audio": {"dtype": "DT_STRING", "shape": [-1]}, ...}
    info["class_names"]["scores"]                    # ["0", "1", ...]
    ```
    """
    version_dir = _version_dir(path)
    meta_file = version_dir / "assets.extra" / METADATA_FILE
    info = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    info.update({
        "path": str(version_dir),
        "version": int(version_dir.name) if version_dir.name.isdigit() else None,
        "signatures": read_signatures(version_dir),
        "warmup_requests": (version_dir / "assets.extra" / "tf_serving_warmup_requests").exists(),
    })
    if info.get("client_op_libraries") is None:  # exported before mmkeras recorded them
        info["client_op_libraries"] = client_op_libraries(version_dir)
    if print_summary:
        print(_summary(info))
    return info
