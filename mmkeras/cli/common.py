"""What every ``mmkeras`` subcommand shares: output, quiet TensorFlow start-up, models, manifests, labels,
reports and the one-line error of an expected failure."""

import errno
import os
import sys


def _version():
    from mmkeras import __version__

    return __version__


def _say(*parts):
    print(*parts, flush=True)


def _warn(message):
    print(f"mmkeras: warning: {message}", file=sys.stderr, flush=True)


# ---- TensorFlow start-up ---------------------------------------------------------------------


def _quiet_tensorflow():
    """Imports TensorFlow without its start-up lines (oneDNN, CUDA drivers, cuInit) on stderr.

    Some are printed by C++ before its logging is set up, so ``TF_CPP_MIN_LOG_LEVEL``
    alone does not hide them: stderr (file descriptor 2) goes to a temporary file
    during the import and is shown only if the import fails.
    """
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also the error-level cuInit line at the first op
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel("ERROR")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


# ---- helpers --------------------------------------------------------------------------


def _load_model(path):
    import keras

    import mmkeras.models  # noqa: F401  (registers the model classes for loading)

    file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"model {path!r}: expected a .keras file or a `mmkeras train --out` directory "
                         f"holding model.keras")
    import zipfile

    if file.endswith(".keras") and not zipfile.is_zipfile(file):
        raise ValueError(f"model {file!r} is not a .keras file (not a zip archive: truncated or another format); "
                         f"expected a model written by `mmkeras train` or model.save")
    try:
        return keras.saving.load_model(file)
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EACCES, errno.EPERM):
            raise
        hint = "; a model on your own modalities or parts needs --plugin MODULE (the module registering them)" \
            if "Unknown" in str(err) else ""
        raise ValueError(f"model {file!r} could not be loaded ({_first_line(err)}); expected a .keras file "
                         f"written by mmkeras (`mmkeras train` or model.save){hint}") from err


def _class_names(arg):
    if os.path.isfile(arg):
        with open(arg, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    return [c.strip() for c in arg.split(",") if c.strip()]


def _manifest_labels(path):
    """``(label values, where)`` of a manifest; every row needs a label."""
    from mmkeras.data.manifest import _read_rows

    rows, lines = _read_rows(path)

    def where(i):
        return f"manifest {path!r} line {lines[i]}"

    for i, row in enumerate(rows):
        if row.get("label") in (None, ""):
            raise ValueError(f"{where(i)} has no label (columns: {sorted(row)}); every row needs one to train on")
    return [row["label"] for row in rows], where


def _label_classes(labels):
    """``(num_classes, class_names or None)`` from the label values of the manifests."""
    from mmkeras.data import labels as label_codes

    values = [v for values, _ in labels for v in values]
    indices = [label_codes.label_index(v, None) for v in values]
    if all(i is not None for i in indices):
        return max(indices) + 1, None
    names = sorted({str(v) for v in values})
    return len(names), names


def _check_labels(labels, class_names, indices_ok):
    """Refuses labels that are not the given class names (or integers read as indices without consent)."""
    from mmkeras.data import labels as label_codes

    for values, where in labels:
        if not indices_ok:
            problem = label_codes.integer_label_problem(values, class_names, where)
            if problem:
                raise ValueError(f"{problem}. Label the rows with class names, or pass --labels-as-indices")
        label_codes.encode(values, class_names, len(class_names), where)  # ValueError naming the line


def _manifest_data(model, path, args, batch_size, training=False):
    """A manifest as a labelled dataset for ``model`` (paths outside its folder only with --allow-outside)."""
    import mmkeras

    options = {"allow_outside": True} if args.allow_outside else {}
    return mmkeras.data.from_manifest(path, model=model, batch_size=batch_size, shuffle=training,
                                      seed=getattr(args, "seed", None), adapt=training, augment=training,
                                      **options)


def _report_and_save(model, manifest, out, args, batch_size=None, baselines=None):
    import mmkeras

    if baselines:  # the manifest itself: each single-modality baseline reads its own column from it
        report = mmkeras.evaluation.report(model, manifest, batch_size=batch_size or 64,
                                           allow_outside=args.allow_outside, baselines=baselines)
    else:
        report = mmkeras.evaluation.report(model, _manifest_data(model, manifest, args, batch_size or 64))
    _say(report.to_text())
    if out:
        written = report.save(out)
        _say(f"report written: {', '.join(written.values())}")
    return report


def _first_line(err):
    text = str(getattr(err, "message", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _expected_failure(err):
    """One line for a failure a user can fix (bad input, disk, permission), or None (a bug: traceback)."""
    if isinstance(err, (ValueError, FileExistsError, FileNotFoundError)):
        return str(err)
    name = type(err).__name__
    tf_error = type(err).__module__.startswith("tensorflow")
    text = _first_line(err)
    if (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or (
            tf_error and "No space left on device" in str(err)):
        where = f" writing {err.filename!r}" if getattr(err, "filename", None) else ""
        return f"the disk is full{where} ({text}); free some space or choose another output directory"
    if isinstance(err, PermissionError) or (tf_error and name == "PermissionDeniedError"):
        where = f" {err.filename!r}" if getattr(err, "filename", None) else ""
        return f"permission denied{where} ({text}); choose a path you can write, or fix its permissions"
    if isinstance(err, OSError):
        return f"{text}; check the path and the device"
    if tf_error and name in ("ResourceExhaustedError", "NotFoundError", "DataLossError", "FailedPreconditionError",
                             "InvalidArgumentError", "UnknownError"):
        return f"TensorFlow: {text} (--debug shows the traceback)"
    return None
