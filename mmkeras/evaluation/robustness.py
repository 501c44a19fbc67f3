"""Accuracy under missing and corrupted modalities: a table, a PNG plot, TensorBoard.

Conditions, for a model with modalities M:
- ``all present``: the clean inputs;
- ``<m> removed``: modality m empty for every example (the serving contract:
  the learned missing embedding replaces its tower output);
- ``<m> <corruption>=<s>``: modality m corrupted at each severity s by the
  corruption its :class:`~mmkeras.modalities.Modality` declares (Gaussian pixel
  noise for images, white noise at an SNR for audio, word dropout for text); a
  modality that declares none is only removed.

Clean features are computed once; a corrupted condition re-preprocesses only the
corrupted modality, and ``cache`` lets several models with the same
preprocessing share those features.
"""

import io
import json

import numpy as np

from mmkeras.evaluation.features import compute_features, remove_modality, replace_modality
from mmkeras.modalities import modality


class RobustnessReport:
    """Rows ``{"condition", "modality", "corruption", "severity", "accuracy"}``, one per condition.

    Example:
    ```python
    report = mmkeras.evaluate_robustness(model, x_test, y_test)
    print(report.to_markdown())
    report.accuracy("audio removed")
    ```
    """

    def __init__(self, rows, model_name=""):
        self.rows = list(rows)
        self.model_name = model_name

    def __len__(self):
        return len(self.rows)

    def accuracy(self, condition):
        """Accuracy of one condition by its name (``"all present"``, ``"image removed"``, ...)."""
        return next(r["accuracy"] for r in self.rows if r["condition"] == condition)

    def to_dict(self):
        return {"model": self.model_name, "rows": self.rows}

    def to_markdown(self):
        lines = ["| condition | modality | corruption | severity | accuracy |", "|---|---|---|---|---|"]
        for r in self.rows:
            sev = "" if r["severity"] is None else f"{r['severity']:g}"
            lines.append(f"| {r['condition']} | {r['modality'] or 'all'} | {r['corruption'] or ''} | {sev} | "
                         f"{100 * r['accuracy']:.2f}% |")
        return "\n".join(lines)

    def to_png(self):
        """The report as a horizontal bar chart, PNG bytes (matplotlib if installed)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:  # no labels without a font renderer, but still a usable chart
            return _bars_png([r["accuracy"] for r in self.rows])
        labels = [r["condition"] for r in self.rows]
        acc = [100 * r["accuracy"] for r in self.rows]
        colors = ["tab:green" if r["modality"] is None else "tab:red" if r["corruption"] is None else "tab:blue"
                  for r in self.rows]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
        ax.barh(range(len(labels)), acc, color=colors)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("test accuracy (%)")
        ax.set_title(f"Robustness: {self.model_name}")
        for i, a in enumerate(acc):
            ax.text(min(a + 1, 88), i, f"{a:.1f}", va="center", fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        return buf.getvalue()

    def save_png(self, path):
        with open(path, "wb") as f:
            f.write(self.to_png())
        return str(path)

    def log_to_tensorboard(self, log_dir, step=0):
        """Writes scalars ``robustness/<condition>``, the table as text and the plot as an image."""
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(log_dir))
        with writer.as_default():
            for r in self.rows:
                tf.summary.scalar(f"robustness/{r['condition'].replace(' ', '_')}", r["accuracy"], step=step)
            tf.summary.text("robustness/table", self.to_markdown(), step=step)
            tf.summary.image("robustness/plot", tf.io.decode_png(self.to_png(), channels=4)[None], step=step)
        writer.flush()
        writer.close()

    def __repr__(self):
        return f"RobustnessReport({json.dumps(self.to_dict())})"


def _bars_png(values, width=400, bar=16):
    import tensorflow as tf

    img = np.full((bar * len(values) + 4, width, 3), 255, np.uint8)
    for i, v in enumerate(values):
        img[2 + i * bar: i * bar + bar, :int(v * (width - 1))] = (60, 110, 200)
    return tf.io.encode_png(img).numpy()


def _accuracy(model, features, labels, batch_size):
    scores = model.predict(features, batch_size=batch_size, verbose=0)
    if isinstance(scores, dict):
        scores = scores[model.heads[0]["name"]]
    return float(np.mean(np.argmax(scores, axis=-1) == np.asarray(labels).reshape(-1)))


def _preprocess_cache_key(model, modality, name, severity, seed, n):
    return json.dumps([modality, model.mm_config["modalities"][modality]["preprocessing"], name, severity, seed, n],
                      sort_keys=True, default=str)


def _severities(modalities, chosen):
    """``{modality: levels}`` of every modality that declares a corruption; ``chosen`` overrides the defaults."""
    chosen = dict(chosen or {})
    unknown = sorted(set(chosen) - set(modalities))
    if unknown:
        raise ValueError(f"evaluate_robustness: severities for {unknown}, which the model does not take; "
                         f"its modalities are {modalities}")
    for m in chosen:
        if modality(m).corruption is None:
            raise ValueError(f"evaluate_robustness: severities for {m!r}, but the {m} modality declares no "
                             "corruption (set `corruption` and `corrupt_value` on its Modality class)")
    return {m: tuple(chosen.get(m, modality(m).corruption_severities)) for m in modalities
            if modality(m).corruption is not None}


def evaluate_robustness(model, x, y, severities=None, seed=0, log_dir=None, plot_path=None, features=None,
                        cache=None, batch_size=256):
    """Accuracy with all modalities, with each one removed, and with each one corrupted.

    Args:
        model: a classifier :class:`~mmkeras.models.MultimodalModel` (first head).
        x: dict of raw inputs (``{"image": png bytes, "audio": wav bytes, ...}``).
        y: ``[N]`` integer labels.
        severities: dict ``{modality: tuple}`` overriding the default levels, each
            modality's ``corruption_severities``: image noise std ``(0.2, 0.4, 0.6)``
            on [0, 1] pixels, audio SNR dB ``(20, 10, 0)``, text word dropout
            ``(0.1, 0.3, 0.5)``.
        seed: int. Seed of the corruption noise.
        log_dir: str or None. Also log scalars, the table and the plot to TensorBoard there.
        plot_path: str or None. Also write the PNG plot there.
        features: dict or None. Precomputed clean features of ``x`` (skips preprocessing).
        cache: dict or None. Shared between calls: corrupted features are reused by
            models with the same preprocessing.
        batch_size: int.

    Returns:
        A :class:`RobustnessReport` with ``1 + M + sum(len(levels))`` rows.

    Example:
    ```python
    report = mmkeras.evaluate_robustness(model, x_test, y_test, log_dir="logs/robust",
                                         plot_path="robustness.png")
    print(report.to_markdown())
    ```
    """
    modalities = list(model.modalities)
    severities = _severities(modalities, severities)
    n = len(np.asarray(y))
    cache = {} if cache is None else cache
    if features is None:
        features = compute_features(model, x, batch_size)
    rows = [{"condition": "all present", "modality": None, "corruption": None, "severity": None,
             "accuracy": _accuracy(model, features, y, batch_size)}]
    for m in modalities:
        rows.append({"condition": f"{m} removed", "modality": m, "corruption": None, "severity": None,
                     "accuracy": _accuracy(model, remove_modality(features, modalities, m), y, batch_size)})
    for m, levels in severities.items():
        name = modality(m).corruption
        for level in levels:
            key = _preprocess_cache_key(model, m, name, level, seed, n)
            if key not in cache:
                # Only the corrupted modality is re-preprocessed; the others are sent empty (cheap).
                raw = {k: (modality(m).corrupt(np.asarray(x[m], dtype=object), level, seed=seed) if k == m
                           else np.full(n, b"", dtype=object)) for k in modalities}
                cache[key] = compute_features(model, raw, batch_size)
            rows.append({"condition": f"{m} {name}={level:g}", "modality": m, "corruption": name,
                         "severity": float(level),
                         "accuracy": _accuracy(model, replace_modality(features, modalities, m, cache[key]), y,
                                               batch_size)})
    report = RobustnessReport(rows, model_name=model.name)
    if plot_path:
        report.save_png(plot_path)
    if log_dir:
        report.log_to_tensorboard(log_dir)
    return report
