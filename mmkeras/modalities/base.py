"""The modality registry: each modality declares everything the library needs to handle it.

A modality is one file with a :class:`Modality` subclass and one registration
(``@MODALITIES.register("image")``). It declares its preprocessing options and
defaults, the feature tensors it produces, how a batch of raw values becomes those
features (TensorFlow graph code, imported only when it runs), how it is augmented
in training, what an empty (absent) value is, and a small valid example (warm-up
requests, tests). Presets, the preprocessor, raw-input validation, manifests,
export and warm-up all go through the registry, so a new modality touches no
other file.

Modalities are ordered by their ``order`` attribute, then by registration: that is
the order of the ``present`` columns, whatever order a preset lists them in.
"""

import os

import numpy as np

from mmkeras.modalities.limits import check_limit, modality_limits
from mmkeras.registry import Registry

MODALITIES = Registry("modality")


class Modality:
    """Base class of modalities (instances are stateless; state lives in the preprocessor).

    Class attributes:
        description: str. What one raw value is, for error messages.
        serving_expects: str. What a serving client sends (export metadata).
        reads_files: bool. A manifest cell holds a file path whose bytes are the value.
        defaults: dict. Preprocessing options and their defaults (request limits of
            :mod:`mmkeras.modalities.limits` are added to them).
        augment_options: set of str. Keys of the preset's ``augment`` section.
        order: int. Position among modalities (image 0, audio 1, text 2; new ones after).

    Example:
    ```python
    @MODALITIES.register("vector")
    class VectorModality(Modality):
        description = "comma-separated numbers, '' when absent"
        defaults = {"size": 8}

        def feature_specs(self, config):
            return {self.name: ((config["size"],), "float32")}

        def preprocess_batch(self, values, config, state):
            ...  # [B] tf.string -> ({"vector": [B, size] float32}, present [B] float32)
    ```
    """

    description = "raw values"
    serving_expects = "bytes"
    reads_files = False
    defaults = {}
    augment_options = frozenset()
    order = 100

    @property
    def name(self):
        return self.registry_key

    # ---- configuration (pure Python) -----------------------------------------------------

    def resolve(self, options):
        """Fills defaults into ``options`` and rejects unknown keys; returns a new dict."""
        options = dict(options or {})
        defaults = {**self.defaults, **modality_limits(self.name)}
        unknown = set(options) - set(defaults)
        if unknown:
            raise ValueError(f"Unknown {self.name} preprocessing option(s) {sorted(unknown)}; "
                             f"known: {sorted(defaults)}")
        config = {**defaults, **options}
        for key in modality_limits(self.name):
            check_limit(key, config[key], self.name)
        return self.check(config)

    def check(self, config):
        """Validates a filled config (hook); returns it, possibly normalised."""
        return config

    def feature_specs(self, config):
        """``{feature name: (shape without batch, dtype)}`` this modality feeds the model."""
        raise NotImplementedError

    def windows_feature(self, config):
        """Name of the ``[B, N]`` window-validity feature in long-input mode, or None."""
        return None

    def saved_config(self, config):
        """The config as saved with a model (state kept as assets is left out)."""
        return config

    def tower_defaults(self, config):
        """Tower options that follow from preprocessing (e.g. the vocabulary size)."""
        return {}

    # ---- training-time augmentation (Keras layers, backend-agnostic) ----------------------

    def augmentation(self, options, config, name):
        """A Keras layer applying ``options`` (the preset's ``augment`` dict) in training, or None."""
        if options:
            raise ValueError(f"the {self.name} modality has no augmentation; got {sorted(options)}")
        return None

    # ---- preprocessing (TensorFlow graph code) ---------------------------------------------

    def make_state(self, config):
        """Learned or loaded preprocessing state, as ``{preprocessor attribute: object}``."""
        return {}

    def needs_adapt(self, state):
        """True when the state must learn from training data before use."""
        return False

    def adapt(self, state, values, config):
        """Learns the state from raw training values."""

    def preprocess_batch(self, values, config, state, guard=True):
        """``[B]`` tf.string -> ``({feature name: [B, ...]}, present [B] float32)``.

        An empty value means the modality is absent: zero features, present 0.
        ``guard`` (optional in an override: the preprocessor passes it only to
        modalities that take it): name the example a decoder rejects inside the
        graph (serving); off in ``tf.data``, where the task names it after the fact.
        """
        raise NotImplementedError

    # ---- raw values (pure Python) ---------------------------------------------------------

    def example(self, config):
        """A small valid raw value (bytes), e.g. for TF Serving warm-up requests."""
        raise NotImplementedError

    def examples(self, config):
        """Valid raw values that take different graph branches (e.g. PNG and JPEG); the first is ``example``."""
        return [self.example(config)]

    def is_empty(self, value):
        return len(value) == 0

    # ---- evaluation: robustness corruptions and explanation panels (numpy, no TensorFlow) ------

    corruption = None
    """str or None. Name of the robustness corruption (``"gaussian_noise_std"``); None: the
    robustness evaluation only removes this modality."""
    corruption_severities = ()
    """tuple. Default severities of ``corruption``, mildest first."""
    explanation_max_bars = 40
    """int. Bars of the default explanation panel (more are unreadable)."""

    def corrupt(self, values, severity, seed=0):
        """``values`` (object array of raw values) corrupted at ``severity``, for the robustness evaluation.

        Empty values (absent modality) stay empty; one ``numpy.random.default_rng(seed)``
        draws the noise example by example, so a corrupted test set is reproducible.
        Override :meth:`corrupt_value` (one value) or this (a whole array).

        Example:
        ```python
        modality("image").corrupt(np.array([png, b""], dtype=object), 0.3)  # [noisy png, b""]
        ```
        """
        rng = np.random.default_rng(seed)
        out = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            out[i] = value if self.is_empty(value) else self.corrupt_value(value, severity, rng)
        return out

    def corrupt_value(self, value, severity, rng):
        """One present raw value corrupted at ``severity`` with noise from ``rng`` (hook of :meth:`corrupt`)."""
        raise NotImplementedError(f"the {self.name} modality declares no corruption (its `corruption` is None)")

    def element_names(self, feature, config, state):
        """Names of one example's feature elements for explanations (tokens of token ids), or None."""
        return None

    def explanation_panels(self, feature, attribution, names=None):
        """The figure panels of one example's explanation (matplotlib-free: data the figure draws).

        Args:
            feature: numpy array. The example's features (what the model saw).
            attribution: numpy array. Its integrated gradients (same shape; ``[L]``
                for token ids: one score per position).
            names: list of str or None. :meth:`element_names` of the feature.

        Returns:
            list of dicts, one per panel: ``kind`` (``"picture"`` [H, W, C] in [0, 1],
            ``"signed_map"`` 2-D scores on a red/blue scale, ``"matrix"`` 2-D values,
            ``"tokens"`` or ``"bars"`` ``[(label, score), ...]``, or ``"custom"`` with
            ``draw(ax, fig, plt)``), ``name`` (what an absent modality's panel is
            called), ``title``, ``values``, optional ``width`` (relative, default 1)
            and ``axis`` (False hides the axes).
            The default: one bar of attribution per element (the 40 largest), or a
            signed map of a feature with several axes.

        Example:
        ```python
        def explanation_panels(self, feature, attribution, names=None):
            return [{"kind": "bars", "name": self.name, "title": "per sensor",
                     "values": list(zip(["x", "y", "z"], attribution))}]
        ```
        """
        name = f"{self.name}: integrated gradients"
        scores = np.asarray(attribution, "float64")
        if scores.ndim > 1:
            return [{"kind": "signed_map", "name": name, "title": name, "values": scores.reshape(len(scores), -1)}]
        labels = names or [str(i) for i in range(len(scores))]
        top = sorted(np.argsort(-np.abs(scores), kind="stable")[:self.explanation_max_bars])
        shown = f" (largest {len(top)} of {len(scores)})" if len(top) < len(scores) else ""
        return [{"kind": "bars", "name": name, "title": f"{name} per element{shown}",
                 "values": [(labels[i], float(scores[i])) for i in top]}]


def modality(name):
    """The registered :class:`Modality` instance called ``name``."""
    return MODALITIES.get(name)()


def modality_order():
    """Every registered modality name, in ``present`` column order (``order``, then registration)."""
    names = MODALITIES.in_order()
    return sorted(names, key=lambda n: (MODALITIES.get(n).order, names.index(n)))


def ordered(names):
    """``names`` sorted into registration order; unknown names raise the registry's error."""
    for n in names:
        MODALITIES.get(n)
    return [m for m in modality_order() if m in names]


def is_raw_input(x):
    """Whether ``x`` is raw input: a raw dict (keyed by modality, no ``present``), a manifest
    path, a ``tf.data`` dataset, or an ``(x, y)`` tuple of those (the one rule, TensorFlow-free).

    Example:
    ```python
    is_raw_input({"image": [png_bytes]})   # True
    is_raw_input({"image": pixels, "present": mask})  # False: model features
    ```
    """
    if isinstance(x, (str, os.PathLike)):
        return True
    if isinstance(x, (tuple, list)) and x:
        return is_raw_input(x[0])
    if isinstance(x, dict):
        return "present" not in x and any(m in x for m in modality_order())
    return type(x).__module__.startswith("tensorflow")


def feature_specs(preprocessing):
    """``{feature: (shape, dtype)}`` for ``{modality: resolved preprocessing config}``, plus ``present``.

    Example:
    ```python
    feature_specs({"image": modality("image").resolve({"height": 28, "width": 28})})
    # {"image": ((28, 28, 3), "float32"), "present": ((1,), "float32")}
    ```
    """
    names = ordered(preprocessing)
    specs = {}
    for m in names:
        specs.update(modality(m).feature_specs(preprocessing[m]))
    specs["present"] = ((len(names),), "float32")
    return specs
