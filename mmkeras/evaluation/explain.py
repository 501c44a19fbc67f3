"""Per-modality explanations of a classifier: exact Shapley values over modality presence,
integrated gradients on the preprocessed features, a PNG figure and TensorBoard images.

Shapley values (Shapley 1953) treat the modalities as players and the predicted
class's probability as the game: ``v(S)`` is the model's output with only the
modalities in ``S`` present, the others removed exactly as preprocessing removes
an empty input (features zeroed, ``present`` 0; see
:func:`mmkeras.evaluation.features.remove_modality`). With M modalities that is
2^M masked evaluations per example, and the values sum to ``v(all) - v(none)``
by construction, where ``v(none)`` is the all-absent prediction computed on
features (serving refuses such a request, the model evaluates it).

Integrated gradients (Sundararajan et al., ICML 2017) attribute ``f(x) - f(x')``
to every feature element: ``(x - x') * mean_alpha grad f(x' + alpha (x - x'))``
(midpoint rule over ``steps`` points). The baseline ``x'`` is all-zero image and
audio features (what an absent modality's features are; ``baselines`` sets
another constant per modality, e.g. the log-mel floor ``log(1e-6)`` of silence)
with every modality still marked present, and for a modality of integer features
(text token ids) a zero *token embedding*: the path runs through the first Keras
``Embedding`` of the modality's tower, whose output is scaled by ``alpha``
(position embeddings stay). A token's score is the sum over its embedding's
dimensions. The figure draws the panels each modality declares
(:meth:`mmkeras.modalities.Modality.explanation_panels`). The
completeness gap ``sum(attributions) - (f(x) - f(x'))`` is reported; it shrinks
as ``steps`` grows.
"""

import contextlib
import json
import math
import os
import struct
from itertools import combinations

import numpy as np

from mmkeras.evaluation.features import compute_features, remove_modality
from mmkeras.modalities import is_raw_input, modality


class Explanation:
    """One example's explanation.

    Attributes:
        index: int. Position of the example in the input.
        target: int. The explained class (the predicted one unless chosen).
        class_name: str. Its name.
        probabilities: numpy array ``[num_classes]``, all modalities present.
        shapley: dict ``{modality: float}``; sums to ``full - none``.
        coalitions: dict ``{"image+audio": p, ..., "none": p}``: the target's
            probability for every subset of modalities present.
        full, none: float. ``v(all present)`` and ``v(none present)``.
        integrated_gradients: dict ``{modality: numpy array}``: image ``[H, W, C]``,
            audio ``[T, F]``, text ``[L]`` (one score per token position).
        ig_completeness: dict with ``attribution_sum``, ``gap`` (``f(x) - f(baseline)``),
            ``error`` and ``steps``.
        features: dict of the example's features (what the model saw).
        element_names: dict ``{modality: list of str}`` for the modalities that name
            their feature elements (:meth:`~mmkeras.modalities.Modality.element_names`:
            the text's tokens, in position order).
        tokens: list of str or None. The first such modality's names (the text's tokens).
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def to_dict(self):
        """The scalar parts as plain Python (JSON-serialisable)."""
        return {"index": self.index, "target": self.target, "class_name": self.class_name,
                "probability": float(self.probabilities[self.target]), "shapley": self.shapley,
                "coalitions": self.coalitions, "full": self.full, "none": self.none,
                "integrated_gradients_per_modality": {m: float(np.sum(a)) for m, a in
                                                      self.integrated_gradients.items()},
                "ig_completeness": self.ig_completeness,
                "tokens": next(([(t, float(s)) for t, s in zip(names, self.integrated_gradients[m])]
                                for m, names in getattr(self, "element_names", {}).items()), None)}

    def to_png(self):
        """The figure as PNG bytes (needs matplotlib: ``pip install mmkeras[plot]``)."""
        from mmkeras.evaluation.explain_figure import explanation_png

        return explanation_png(self)

    def save_png(self, path):
        """Writes :meth:`to_png` to ``path`` atomically."""
        from mmkeras.evaluation.explain_figure import write_atomic

        write_atomic(path, self.to_png())

    def __repr__(self):
        return f"Explanation({json.dumps(self.to_dict()['shapley'])}, target={self.class_name!r})"


def _classifier_output(model, head):
    """(head name, class names) of the explained classification head."""
    heads = getattr(model, "heads", None) or []
    if not heads:
        raise ValueError(f"explain needs a classifier; model {model.name!r} has no classification head")
    spec = heads[0] if head is None else next((h for h in heads if h["name"] == head), None)
    if spec is None:
        raise ValueError(f"explain: unknown head {head!r}; the model's heads are {[h['name'] for h in heads]}")
    if spec["type"] != "classification":
        raise ValueError(f"explain: head {spec['name']!r} is a {spec['type']} head; explanations are of "
                         "classification probabilities")
    return spec["name"], model.head_class_names(spec["name"])


def _select(outputs, head):
    return outputs[head] if isinstance(outputs, dict) else outputs


def _subsets(num):
    return [s for size in range(num, -1, -1) for s in combinations(range(num), size)]


def shapley_values(model, features, targets, head=None, batch_size=256):
    """Exact Shapley values of each modality for the target classes' probabilities.

    Args:
        model: a classifier.
        features: dict of feature arrays (``model.preprocess`` output), N examples.
        targets: int array ``[N]``: the class explained per example.
        head: str or None. The classification head (default: the first).

    Returns:
        ``(values [N, M], coalition probabilities {subset tuple: [N]})``; the
        values of each example sum to ``v(all) - v(none)``.

    Example:
    ```python
    values, coalitions = shapley_values(model, features, np.argmax(model.predict(features), -1))
    ```
    """
    head = _classifier_output(model, head)[0]
    modalities = list(model.modalities)
    m, n = len(modalities), len(targets)
    subsets = _subsets(m)
    batches = []
    for subset in subsets:
        masked = features
        for i, name in enumerate(modalities):
            if i not in subset:
                masked = remove_modality(masked, modalities, name)
        batches.append(masked)
    stacked = {k: np.concatenate([b[k] for b in batches]) for k in features}
    probs = _select(model.predict(stacked, batch_size=batch_size, verbose=0), head)
    value = {s: probs[j * n:(j + 1) * n][np.arange(n), targets].astype("float64") for j, s in enumerate(subsets)}
    phi = np.zeros((n, m))
    for i in range(m):
        for subset in subsets:
            if i in subset:
                continue
            weight = math.factorial(len(subset)) * math.factorial(m - len(subset) - 1) / math.factorial(m)
            phi[:, i] += weight * (value[tuple(sorted(subset + (i,)))] - value[subset])
    return phi, value


def _embedding_layer(model, m):
    """The token-embedding layer of modality ``m``'s tower (the first Keras ``Embedding`` inside it)."""
    import keras

    tower = model.get_layer(f"{m}_tower")
    direct = getattr(tower, "embedding", None)
    if isinstance(direct, keras.layers.Embedding):
        return direct
    found = next((layer for layer in tower._flatten_layers(include_self=False)
                  if isinstance(layer, keras.layers.Embedding)), None)
    if found is None:
        raise ValueError(f"explain: the {m} tower {type(tower).__name__} has no keras.layers.Embedding to "
                         f"integrate its integer features ({m!r}) along")
    return found


class _ScaledEmbedding:
    """While active, the embedding layer's output is multiplied by ``self.scale`` ``[B, L, 1]``."""

    def __init__(self, layer):
        self.layer, self.scale = layer, None

    def __enter__(self):
        original = self.layer.call

        def scaled(*args, **kwargs):
            out = original(*args, **kwargs)
            return out * self.scale if self.scale is not None else out

        object.__setattr__(self.layer, "call", scaled)
        return self

    def __exit__(self, *exc):
        object.__delattr__(self.layer, "call")


def integrated_gradients(model, features, targets, head=None, steps=64, baselines=None):
    """Integrated gradients of the target classes' probabilities on the preprocessed features.

    Needs the TensorFlow backend (gradients through ``tf.GradientTape``).

    Args:
        model: a classifier.
        features: dict of feature arrays, N examples.
        targets: int array ``[N]``.
        head: str or None. The classification head.
        steps: int. Points of the midpoint rule along the straight path.
        baselines: dict or None. ``{modality: constant}`` baseline of float features (default 0).

    Returns:
        ``(attributions {modality: [N, ...]}, completeness [N] dicts)``; see the module docstring.

    Example:
    ```python
    ig, completeness = integrated_gradients(model, features, targets, steps=128)
    ig["image"].shape  # [N, 28, 28, 1]
    ```
    """
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("integrated_gradients needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps must be a positive integer, got {steps!r}")
    head = _classifier_output(model, head)[0]
    modalities = list(model.modalities)
    continuous = [m for m in modalities if np.asarray(features[m]).dtype.kind == "f"]
    baselines = dict(baselines or {})
    unknown = set(baselines) - set(continuous)
    if unknown:
        raise ValueError(f"integrated_gradients: baselines for {sorted(unknown)}; float-feature modalities: "
                         f"{continuous}")
    # Integer features (token ids) integrate along their tower's embedding, scaled by alpha.
    discrete = [m for m in modalities if np.asarray(features[m]).dtype.kind in "iu"]
    scalers = {m: _ScaledEmbedding(_embedding_layer(model, m)) for m in discrete}
    alphas = (np.arange(steps) + 0.5) / steps
    attributions = {m: np.zeros(np.shape(features[m]) if m in continuous else np.shape(features[m])[:2], "float32")
                    for m in modalities if m in continuous or m in scalers}
    completeness = []

    def value(batch, scales, target):
        for m, scale in scales.items():
            scalers[m].scale = tf.cast(scale, scalers[m].layer.compute_dtype)
        out = _select(model(batch, training=False), head)
        return tf.cast(out, tf.float32)[:, target]

    def interpolated(row, a):
        """The example at each ``alpha`` in ``a``: float features and token embeddings scaled by alpha."""
        batch = {k: tf.constant(np.repeat(v, len(a), axis=0)) for k, v in row.items()}
        for m in continuous:
            b = np.float32(baselines.get(m, 0.0))
            batch[m] = tf.constant(b + a.reshape((-1,) + (1,) * (row[m].ndim - 1)).astype("float32") * (row[m] - b))
        scales = {m: tf.constant(np.broadcast_to(a.reshape(-1, 1, 1), (len(a), row[m].shape[1], 1)).astype("float32"))
                  for m in discrete}
        return batch, scales

    with contextlib.ExitStack() as stack:
        for scaler in scalers.values():
            stack.enter_context(scaler)
        for n, target in enumerate(np.asarray(targets)):
            row = {k: np.asarray(v[n:n + 1]) for k, v in features.items()}
            batch, scales = interpolated(row, alphas)
            sources = [batch[m] for m in continuous] + [scales[m] for m in discrete]
            with tf.GradientTape() as tape:
                tape.watch(sources)
                f = value(batch, scales, target)
            grads = dict(zip(continuous + discrete, (g.numpy().mean(axis=0) for g in tape.gradient(f, sources))))
            for m in continuous:  # (x - baseline) * mean gradient
                attributions[m][n] = (row[m][0] - np.float32(baselines.get(m, 0.0))) * grads[m]
            for m in discrete:  # d f / d scale_t = embedding_t . grad_t: the token's IG score
                attributions[m][n] = grads[m][:, 0]
            total = float(sum(np.sum(a[n]) for a in attributions.values()))
            f_x, f_base = value(*interpolated(row, np.array([1.0, 0.0])), target).numpy()
            gap = float(f_x) - float(f_base)
            completeness.append({"attribution_sum": total, "gap": gap, "error": total - gap, "steps": int(steps),
                                 "f_x": float(f_x), "f_baseline": float(f_base)})
    return attributions, completeness


def _features(model, examples, batch_size):
    """Feature arrays from raw inputs, a manifest file (CSV/JSONL, as ``evaluate`` takes) or feature arrays."""
    if isinstance(examples, (str, os.PathLike)):
        from mmkeras.data.pipeline import RawInputs

        raw = RawInputs(model)
        data, _, locate = raw.prepare(examples, None, batch_size, False, training=False, labeled=False)

        def collect():
            parts = [element[0] if isinstance(element, tuple) else element for element in data]
            return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

        return raw.run(collect, locate)  # a bad row's error names its manifest line and file
    return compute_features(model, examples, batch_size=batch_size) if is_raw_input(examples) else {
        k: np.asarray(v) for k, v in examples.items()}


def _targets(target, probs, class_names, head):
    """One class index per example from None (the predicted class), indices or class names."""
    n = len(probs)
    if target is None:
        return np.argmax(probs, axis=-1)
    values = [target] if isinstance(target, (str, int, np.integer)) else list(target)
    indices = []
    for value in values:
        if isinstance(value, str):
            if value not in class_names:
                raise ValueError(f"explain: target {value!r} is not a class of head {head!r}; its classes are "
                                 f"{class_names}")
            value = class_names.index(value)
        if not isinstance(value, (int, np.integer)) or not 0 <= value < probs.shape[-1]:
            raise ValueError(f"explain: target must be a class index in 0..{probs.shape[-1] - 1} or a class name "
                             f"of head {head!r}, got {target!r}")
        indices.append(int(value))
    if len(indices) not in (1, n):
        raise ValueError(f"explain: {len(indices)} targets for {n} examples; give one, or one per example")
    return np.broadcast_to(np.asarray(indices, "int64"), (n,)).copy()


def _element_names(model, m, feature):
    """What modality ``m`` calls its feature elements (the text's tokens), or None; asks the registry."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None:
        return modality(m).element_names(feature, preprocessor.config[m], preprocessor.state(m))
    return modality(m).element_names(feature, model.mm_config["modalities"][m]["preprocessing"], {})


def explain(model, examples, target=None, head=None, steps=64, baselines=None, batch_size=256, plot_dir=None,
            log_dir=None):
    """Explains a classifier's predictions per modality: exact Shapley values over modality
    presence and integrated gradients on the preprocessed features (see the module docstring).

    Args:
        model: a :class:`~mmkeras.models.MultimodalClassifier` (TensorFlow backend for the gradients).
        examples: raw inputs (``{"image": [png, ...], "audio": [...]}``), a manifest
            file (CSV/JSONL, as ``evaluate`` takes; its label column is ignored) or a
            feature dict. Explanations cost 2^M predictions and ``steps`` gradient
            evaluations per example: pass a handful of examples.
        target: None (explain the predicted class), a class index or class name, or
            one of those per example.
        head: str or None. The classification head to explain (default: the first).
        steps: int. Integrated-gradients steps.
        baselines: dict or None. Integrated-gradients baseline per float modality (default 0).
        batch_size: int. Prediction batch size of the Shapley evaluations.
        plot_dir: str or None. Write ``explanation_<i>.png`` per example there.
        log_dir: str or None. Log every figure (tag ``explain/example_<i>/figure``) and its
            Shapley values (text, ``explain/example_<i>/shapley``) to TensorBoard there.

    Returns:
        list of :class:`Explanation`, one per example.

    Example:
    ```python
    explanations = mmkeras.explain(model, {"image": pngs[:4], "audio": wavs[:4]}, plot_dir="explain")
    explanations[0].shapley  # {"image": 0.61, "audio": 0.27}
    mmkeras.explain(model, "val.csv", target="cat", log_dir="logs/explain")  # a manifest, a class name
    ```
    """
    name, class_names = _classifier_output(model, head)
    features = _features(model, examples, batch_size)
    n = len(features["present"])
    if n == 0:
        raise ValueError("explain: examples are empty")
    probs = _select(model.predict(features, batch_size=batch_size, verbose=0), name)
    targets = _targets(target, probs, list(class_names), name)
    phi, coalitions = shapley_values(model, features, targets, head=name, batch_size=batch_size)
    ig, completeness = integrated_gradients(model, features, targets, head=name, steps=steps, baselines=baselines)
    modalities = list(model.modalities)
    subset_name = lambda s: "+".join(modalities[i] for i in s) or "none"  # noqa: E731
    out = []
    for i in range(n):
        names = {m: v for m in modalities if (v := _element_names(model, m, features[m][i])) is not None}
        out.append(Explanation(
            index=i, target=int(targets[i]), class_name=class_names[int(targets[i])], probabilities=probs[i],
            shapley={m: float(phi[i, j]) for j, m in enumerate(modalities)},
            coalitions={subset_name(s): float(v[i]) for s, v in coalitions.items()},
            full=float(coalitions[tuple(range(len(modalities)))][i]), none=float(coalitions[()][i]),
            integrated_gradients={m: a[i] for m, a in ig.items()}, ig_completeness=completeness[i],
            features={k: v[i] for k, v in features.items()}, element_names=names,
            tokens=next(iter(names.values()), None), model_name=model.name, modalities=modalities))
    if plot_dir:
        from pathlib import Path

        for e in out:
            e.save_png(Path(plot_dir) / f"explanation_{e.index}.png")
    if log_dir:
        log_explanations(out, log_dir)
    return out


def log_explanations(explanations, log_dir, step=0):
    """Writes each explanation's figure as a TensorBoard image and its Shapley values as text.

    Each kind has its own tag (``explain/example_<i>/figure``, ``.../shapley``):
    TensorBoard keeps one plugin per tag, so a shared tag hid one of them. The
    figure is written as a classic image summary (PNG bytes), which TensorBoard's
    image dashboard and its ``EventAccumulator`` both list.

    Example:
    ```python
    log_explanations(mmkeras.explain(model, examples), "logs/explain")  # tensorboard --logdir logs
    ```
    """
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for e in explanations:
            png = e.to_png()
            width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
            image = summary_pb2.Summary.Image(encoded_image_string=png, height=height, width=width, colorspace=4)
            value = summary_pb2.Summary.Value(tag=f"explain/example_{e.index}/figure", image=image)
            tf.summary.experimental.write_raw_pb(summary_pb2.Summary(value=[value]).SerializeToString(), step=step)
            tf.summary.text(f"explain/example_{e.index}/shapley", json.dumps(e.to_dict()["shapley"]), step=step)
    writer.flush()
    writer.close()


__all__ = ["Explanation", "explain", "integrated_gradients", "log_explanations", "shapley_values"]
