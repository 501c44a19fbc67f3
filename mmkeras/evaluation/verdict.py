"""Is fusion worth it? A paired comparison of a fused model with single-modality models.

Every model is scored on the same examples, so the comparison is paired: per
example, is the fused model right and the single-modality one wrong, or the
reverse? Two tests read those counts:

- the exact McNemar test (two-sided binomial test on the discordant pairs),
- a paired bootstrap interval of the accuracy difference (examples resampled
  together for both models).

The verdict says fusion beats the best single modality only when the interval
lies above zero; a positive difference inside the noise is reported as such.
NumPy only (no TensorFlow), so it runs anywhere the predictions can be loaded.
"""

import json
import math

import numpy as np

from mmkeras.utils.atomic import atomic_write_text

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 10_000


def mcnemar_exact(fused_only, single_only):
    """Two-sided exact McNemar p-value from the discordant counts.

    Args:
        fused_only: int. Examples the fused model gets right and the other wrong.
        single_only: int. Examples the other model gets right and the fused wrong.

    Returns:
        float in [0, 1]: ``min(1, 2 * P[X <= min(b, c)])`` for ``X ~ Binomial(b + c, 1/2)``
        (exact integer arithmetic, so large counts do not underflow).

    Example:
    ```python
    mcnemar_exact(10, 2)   # 0.0386 (2 * 79 / 4096)
    ```
    """
    b, c = int(fused_only), int(single_only)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_bootstrap_interval(fused_correct, single_correct, confidence=CONFIDENCE, samples=BOOTSTRAP_SAMPLES,
                              seed=0):
    """Percentile bootstrap interval of ``accuracy(fused) - accuracy(single)``, in points.

    Examples are resampled with replacement, the same draw for both models. Each
    example's difference is +1, -1 or 0, so one resample's mean needs only the
    multinomial counts of the three kinds: exactly the example bootstrap, at a cost
    independent of the number of examples.

    Args:
        fused_correct: bool array ``[N]``, per-example correctness of the fused model.
        single_correct: bool array ``[N]``, of the other model on the same examples.
        confidence: float. Interval coverage.
        samples: int. Bootstrap resamples.
        seed: int. The resampling seed (recorded in the verdict).

    Returns:
        ``(low, high)`` in accuracy points (percent).

    Example:
    ```python
    low, high = paired_bootstrap_interval(fused == y, image_only == y)
    ```
    """
    a, b = _check_pair(fused_correct, single_correct)
    n = len(a)
    kinds = np.array([np.sum(a & ~b), np.sum(~a & b), np.sum(a == b)], np.int64)
    counts = np.random.default_rng(seed).multinomial(n, kinds / n, size=samples)
    differences = 100.0 * (counts[:, 0] - counts[:, 1]) / n
    tail = 100.0 * (1.0 - confidence) / 2
    low, high = np.percentile(differences, [tail, 100.0 - tail])
    return float(low), float(high)


def _check_pair(fused_correct, single_correct):
    a = np.asarray(fused_correct, bool).reshape(-1)
    b = np.asarray(single_correct, bool).reshape(-1)
    if len(a) != len(b):
        raise ValueError(f"the models were scored on different examples: {len(a)} fused vs {len(b)} single "
                         f"predictions; a paired comparison needs the same examples in the same order")
    if len(a) == 0:
        raise ValueError("no examples to compare the models on")
    return a, b


class Verdict:
    """The comparison of a fused model with each single-modality model on the same examples.

    Attributes:
        accuracies: dict ``{name: accuracy}`` (``"fused"`` and each modality), fractions.
        best_single_modality: str. The single modality with the highest accuracy.
        difference: float. Fused minus best single accuracy, in points.
        interval: ``(low, high)``. Its paired bootstrap interval, in points.
        p_value: float. Exact McNemar p-value of the same pair.
        significant: bool. The interval excludes zero.
        fusion_beats_best_single: bool. Positive and significant.

    Example:
    ```python
    verdict = compare_fusion(y_val, fused_predictions, {"image": image_predictions, "audio": audio_predictions})
    print(verdict.line())      # "fusion beats the best single modality (image, 97.2%) by +1.8 points ..."
    verdict.save("runs/tune/verdict.json")
    ```
    """

    def __init__(self, accuracies, best_single_modality, interval, p_value, split="validation", counts=None,
                 confidence=CONFIDENCE, seed=0):
        self.accuracies = dict(accuracies)
        self.best_single_modality = best_single_modality
        self.fused = self.accuracies["fused"]
        self.best_single = self.accuracies[best_single_modality]
        self.difference = 100.0 * (self.fused - self.best_single)
        self.interval = (float(interval[0]), float(interval[1]))
        self.p_value = float(p_value)
        self.significant = self.interval[0] > 0 or self.interval[1] < 0
        self.fusion_beats_best_single = self.difference > 0 and self.significant
        self.split, self.counts, self.confidence, self.seed = split, dict(counts or {}), confidence, seed

    def line(self):
        """The one-line verdict a report opens with."""
        best = f"({self.best_single_modality}, {self.best_single:.1%})"
        noise = (f"{self.confidence:.0%} paired bootstrap interval [{self.interval[0]:+.1f}, {self.interval[1]:+.1f}]"
                 f", McNemar p = {self.p_value:.3g}")
        if self.fusion_beats_best_single:
            return (f"fusion beats the best single modality {best} by {self.difference:+.1f} points on "
                    f"{self.split} ({noise})")
        why = ("the difference is within noise" if not self.significant
               else "the single modality is significantly better")
        return (f"fusion does not beat the best single modality {best}: {self.difference:+.1f} points on "
                f"{self.split}, {why} ({noise}); consider the {self.best_single_modality}-only model")

    def table(self):
        """The accuracies side by side, fused first, then each modality alone (best first)."""
        singles = sorted((k for k in self.accuracies if k != "fused"), key=lambda k: -self.accuracies[k])
        width = max(len(k) for k in self.accuracies) + 8
        lines = [f"{'model':<{width}}{self.split + ' accuracy':>22}"]
        for name in ["fused", *singles]:
            label = name if name == "fused" else f"{name} only"
            lines.append(f"{label:<{width}}{self.accuracies[name]:>22.2%}")
        return "\n".join(lines)

    def to_text(self):
        return f"{self.line()}\n\n{self.table()}"

    def __str__(self):
        return self.to_text()

    def to_dict(self):
        """The ``verdict.json`` contents (accuracies as fractions, difference and interval in points)."""
        return {"fusion_beats_best_single": bool(self.fusion_beats_best_single),
                "best_single_modality": self.best_single_modality, "fused": self.fused,
                "best_single": self.best_single, "difference": round(self.difference, 4),
                "interval": [round(self.interval[0], 4), round(self.interval[1], 4)],
                "significant": bool(self.significant), "mcnemar_p": self.p_value, "confidence": self.confidence,
                "bootstrap_samples": BOOTSTRAP_SAMPLES, "bootstrap_seed": self.seed, "split": self.split,
                "accuracies": self.accuracies, "discordant": self.counts, "line": self.line()}

    def save(self, path):
        """Writes :meth:`to_dict` as JSON, atomically (a kill never leaves half a file)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path


def compare_fusion(labels, fused_predictions, single_predictions, split="validation", seed=0):
    """Compares a fused model's predictions with single-modality models' on the same examples.

    Args:
        labels: int array ``[N]``, the true classes.
        fused_predictions: int array ``[N]``, the fused model's predicted classes.
        single_predictions: dict ``{modality: int array [N]}``, each single-modality model's.
        split: str. What the examples are (``"validation"``), for the verdict line.
        seed: int. The bootstrap seed.

    Returns:
        A :class:`Verdict` against the most accurate single modality.

    Example:
    ```python
    verdict = compare_fusion(y, fused.argmax(-1), {"image": image.argmax(-1), "audio": audio.argmax(-1)})
    verdict.fusion_beats_best_single, verdict.interval
    ```
    """
    labels = np.asarray(labels).reshape(-1)
    if not single_predictions:
        raise ValueError("compare_fusion needs at least one single-modality model's predictions")
    fused = np.asarray(fused_predictions).reshape(-1) == labels
    correct = {m: _check_pair(fused, np.asarray(p).reshape(-1) == labels)[1] for m, p in single_predictions.items()}
    accuracies = {"fused": float(fused.mean()), **{m: float(c.mean()) for m, c in correct.items()}}
    best = max(correct, key=accuracies.get)  # the first of equals
    fused_only, single_only = int(np.sum(fused & ~correct[best])), int(np.sum(~fused & correct[best]))
    return Verdict(accuracies, best, paired_bootstrap_interval(fused, correct[best], seed=seed),
                   mcnemar_exact(fused_only, single_only), split=split, seed=seed,
                   counts={"fused_only": fused_only, "single_only": single_only})


def not_applicable(modality):
    """The line for data with a single modality, where there is nothing to fuse."""
    return f"fusion is not applicable: the data has one modality ({modality}); the model is {modality}-only"
