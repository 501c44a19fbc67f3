"""A classification report a person can read: per-class precision/recall/F1, accuracy,
the confusion matrix with class names and counts, and accuracy with each modality removed.
"""

import contextlib
import json
import os

import numpy as np

from mmkeras.evaluation.confusion import confusion_image, confusion_matrix, confusion_png, confusion_text


class ClassificationReport:
    """Per-class and overall scores of one classification head on labelled data.

    Printing it shows the tables; :meth:`to_dict` has every figure; :meth:`save`
    writes ``report.txt``, ``report.json`` and (with matplotlib)
    ``confusion_matrix.png``.

    Attributes:
        class_names: list of str.
        confusion_matrix: ``[C, C]`` int array, rows = true class, columns = predicted.
        accuracy: float.
        classes: list of dicts ``{"class", "precision", "recall", "f1", "support"}``.
        accuracy_without: dict ``{modality: accuracy with that modality empty}``
            (multimodal models; the serving contract's "absent").

    Example:
    ```python
    report = mmkeras.evaluation.report(model, x_test, y_test)
    print(report)                      # per-class table, confusion matrix, modality removal
    report.save("reports/run1")        # report.txt, report.json, confusion_matrix.png
    ```
    """

    def __init__(self, class_names, matrix, accuracy_without=None, model_name="", head="scores"):
        self.class_names = [str(c) for c in class_names]
        self.confusion_matrix = np.asarray(matrix, np.int64)
        self.accuracy_without = dict(accuracy_without or {})
        self.model_name, self.head = model_name, head
        support = self.confusion_matrix.sum(axis=1)
        predicted = self.confusion_matrix.sum(axis=0)
        hits = np.diag(self.confusion_matrix)
        precision = np.divide(hits, predicted, out=np.zeros(len(hits)), where=predicted > 0)
        recall = np.divide(hits, support, out=np.zeros(len(hits)), where=support > 0)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(hits)),
                       where=(precision + recall) > 0)
        self.num_examples = int(support.sum())
        self.accuracy = float(hits.sum() / max(self.num_examples, 1))
        self.classes = [{"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                        for c, p, r, f, s in zip(self.class_names, precision, recall, f1, support)]
        weights = support / max(self.num_examples, 1)
        self.macro = {k: float(np.mean(v)) for k, v in (("precision", precision), ("recall", recall), ("f1", f1))}
        self.weighted = {k: float(np.sum(v * weights)) for k, v in (("precision", precision), ("recall", recall),
                                                                     ("f1", f1))}

    def to_dict(self):
        return {"model": self.model_name, "head": self.head, "num_examples": self.num_examples,
                "accuracy": self.accuracy, "classes": self.classes, "macro_avg": self.macro,
                "weighted_avg": self.weighted, "class_names": self.class_names,
                "confusion_matrix": self.confusion_matrix.tolist(), "accuracy_without": self.accuracy_without}

    def classes_text(self):
        """The per-class table (precision, recall, F1, support) with accuracy and averages."""
        width = max(12, max(len(c) for c in self.class_names) + 2)
        lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1-score':>10}{'support':>10}"]
        for c in self.classes:
            lines.append(f"{c['class']:<{width}}{c['precision']:>10.3f}{c['recall']:>10.3f}{c['f1']:>10.3f}"
                         f"{c['support']:>10d}")
        lines.append("")
        lines.append(f"{'accuracy':<{width}}{'':>20}{self.accuracy:>10.3f}{self.num_examples:>10d}")
        for name, avg in (("macro avg", self.macro), ("weighted avg", self.weighted)):
            lines.append(f"{name:<{width}}{avg['precision']:>10.3f}{avg['recall']:>10.3f}{avg['f1']:>10.3f}"
                         f"{self.num_examples:>10d}")
        return "\n".join(lines)

    def to_text(self):
        parts = [f"Classification report: model {self.model_name!r}, head {self.head!r}, {self.num_examples} "
                 f"examples, accuracy {self.accuracy:.2%}", "", self.classes_text(), "",
                 "Confusion matrix (rows: true class, columns: predicted class; counts)",
                 confusion_text(self.confusion_matrix, self.class_names)]
        if self.accuracy_without:
            parts += ["", "Accuracy with one modality removed (sent empty, as a client may):",
                      f"  {'all present':<16}{self.accuracy:>8.2%}"]
            parts += [f"  {m + ' removed':<16}{a:>8.2%}" for m, a in self.accuracy_without.items()]
        return "\n".join(parts)

    def __str__(self):
        return self.to_text()

    def __repr__(self):
        return (f"ClassificationReport(model={self.model_name!r}, examples={self.num_examples}, "
                f"accuracy={self.accuracy:.4f})")

    def confusion_png(self):
        """The labelled confusion-matrix PNG (bytes); needs matplotlib (``pip install 'mmkeras[plot]'``)."""
        return confusion_png(self.confusion_matrix, self.class_names, self._title())

    def _title(self):
        return f"{self.model_name}: accuracy {self.accuracy:.2%} on {self.num_examples} examples"

    def save(self, directory):
        """Writes ``report.txt``, ``report.json`` and, with matplotlib, ``confusion_matrix.png`` (atomically).

        Returns:
            dict ``{kind: path}`` of the files written, keyed by extension (``"txt"``, ``"json"``, ``"png"``).
        """
        os.makedirs(directory, exist_ok=True)
        written = {"txt": _atomic_write(os.path.join(directory, "report.txt"), (self.to_text() + "\n").encode()),
                   "json": _atomic_write(os.path.join(directory, "report.json"),
                                         (json.dumps(self.to_dict(), indent=1) + "\n").encode())}
        with contextlib.suppress(ImportError):  # the text and JSON hold every figure; the PNG needs the plot extra
            written["png"] = _atomic_write(os.path.join(directory, "confusion_matrix.png"), self.confusion_png())
        return written

    def log_to_tensorboard(self, log_dir, step=0):
        """Writes the accuracy scalars, the report as text and the confusion matrix image."""
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(log_dir))
        with writer.as_default():
            tf.summary.scalar(f"report/{self.head}/accuracy", self.accuracy, step=step)
            for m, a in self.accuracy_without.items():
                tf.summary.scalar(f"report/{self.head}/accuracy_without_{m}", a, step=step)
            tf.summary.text(f"report/{self.head}", "```\n" + self.to_text() + "\n```", step=step)
            tf.summary.image(f"report/{self.head}/confusion_matrix",
                             confusion_image(self.confusion_matrix, self.class_names, self._title()), step=step)
        writer.flush()
        writer.close()


def _atomic_write(path, data):
    from mmkeras.utils.atomic import atomic_write_bytes

    return atomic_write_bytes(path, data)


def _features_and_labels(model, x, y, head, batch_size, allow_outside=False):
    """Preprocessed features (numpy) and the head's integer labels, from any input the model takes."""
    import tensorflow as tf

    from mmkeras.data import raw as raw_checks
    from mmkeras.evaluation.features import compute_features

    if isinstance(x, (str, os.PathLike, tf.data.Dataset)):
        if y is not None:
            raise ValueError("a manifest or dataset carries its labels: do not pass y")
        from mmkeras.data.pipeline import RawInputs

        data, _, locate = RawInputs(model, allow_outside=allow_outside).prepare(x, None, batch_size, False,
                                                                                training=False)
        features, labels = [], []

        def collect():  # run through RawInputs.run, so a bad file is named by its manifest line
            for element in data:
                if not isinstance(element, tuple) or len(element) < 2:
                    raise ValueError("report needs labelled data: the dataset yields no labels")
                features.append({k: v.numpy() for k, v in element[0].items()})
                lab = element[1][head] if isinstance(element[1], dict) else element[1]
                labels.append(np.asarray(lab).reshape(-1))

        RawInputs.run(collect, locate)
        return ({k: np.concatenate([f[k] for f in features]) for k in features[0]},
                np.concatenate(labels).astype(int))
    if y is None:
        raise ValueError("report needs labels: report(model, x, y), or a labelled manifest/dataset as x")
    n = len(x["present"]) if "present" in x else len(next(iter(x.values())))
    labels = raw_checks.validate_labels(y, model.heads, n)[head]
    features = x if "present" in x else compute_features(model, x, batch_size)
    return features, np.asarray(labels).reshape(-1)


def _predicted(model, features, head, batch_size):
    scores = model.predict(features, batch_size=batch_size, verbose=0)
    return np.argmax(scores[head] if isinstance(scores, dict) else scores, axis=-1)


def report(model, x, y=None, head=None, remove_modalities=True, batch_size=256, allow_outside=False):
    """Evaluates a classifier and returns a :class:`ClassificationReport`.

    Args:
        model: a :class:`~mmkeras.models.MultimodalModel` with a classification head.
        x: raw inputs (dict), a labelled manifest file, a labelled ``tf.data``
            dataset, or a feature dict.
        y: labels (indices or class names) for dict inputs; None otherwise.
        head: str or None. Head name (default: the first classification head).
        remove_modalities: bool. Also measure accuracy with each modality sent
            empty (multimodal models).
        batch_size: int.
        allow_outside: bool. A manifest's file paths may be absolute or lead
            outside its directory (see :func:`mmkeras.data.from_manifest`).

    Returns:
        A :class:`ClassificationReport`; ``print(report)`` shows it.

    Example:
    ```python
    report = mmkeras.evaluation.report(model, x_test, y_test)
    print(report)
    report.classes[0]["recall"], report.accuracy_without["audio"]
    ```
    """
    from mmkeras.evaluation.features import remove_modality

    spec = next((h for h in model.heads if h["type"] == "classification" and (head is None or h["name"] == head)),
                None)
    if spec is None:
        raise ValueError(f"model {model.name!r} has no classification head"
                         + (f" named {head!r}" if head else "") + f"; heads: {[h['name'] for h in model.heads]}")
    features, labels = _features_and_labels(model, x, y, spec["name"], batch_size, allow_outside)
    matrix = confusion_matrix(labels, _predicted(model, features, spec["name"], batch_size), spec["units"])
    without = {}
    if remove_modalities and len(model.modalities) > 1:
        for m in model.modalities:
            predicted = _predicted(model, remove_modality(features, model.modalities, m), spec["name"], batch_size)
            without[m] = float(np.mean(predicted == labels))
    return ClassificationReport(model.head_class_names(spec["name"]), matrix, without, model_name=model.name,
                                head=spec["name"])
