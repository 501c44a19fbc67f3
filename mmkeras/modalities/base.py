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

from mmkeras.modalities.limits import MAX_EXAMPLES, MAX_EXAMPLES_DOC, check_limit
from mmkeras.registry import Registry

MODALITIES = Registry("modality")


class Modality:
    """Base class of modalities (instances are stateless; state lives in the preprocessor).

    Class attributes:
        description: str. What one raw value is, for error messages.
        serving_expects: str. What a serving client sends (export metadata).
        reads_files: bool. A manifest cell holds a file path whose bytes are the value.
        defaults: dict. Preprocessing options and their defaults (``limits`` are added to them).
        augment_options: set of str. Keys of the preset's ``augment`` section.
        order: int. Position among modalities (image 0, audio 1, text 2; new ones after).
        limits: dict. Request limits ``{name: default int}`` (checked in the graph; set per
            preset in ``preprocessing`` or per export); ``limit_docs`` says why each is there.
        text_values: bool. A raw value is UTF-8 text (``""`` when absent; a manifest cell holds
            the value itself; REST clients may send it as a JSON string), not file bytes.
        file_signatures, file_suffixes, file_expected, file_noun: what a file of this modality
            is (see :meth:`file_kind`), for manifests and the command line.

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
        defaults = {**self.defaults, **self.limits}
        unknown = set(options) - set(defaults)
        if unknown:
            raise ValueError(f"Unknown {self.name} preprocessing option(s) {sorted(unknown)}; "
                             f"known: {sorted(defaults)}")
        config = {**defaults, **options}
        for key in self.limits:
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
        """True when the state must learn from training data before use (then ``fit`` calls :meth:`adapt`)."""
        return False

    def adapt(self, state, values, config, batch_size=256):
        """Learns the state from raw training values.

        Args:
            state: what :meth:`make_state` returned (updated in place).
            values: the non-empty raw training values (a list), or a ``tf.data.Dataset`` of them.
            config: the resolved preprocessing config.
            batch_size: int. Batch size while learning (optional in an override).
        """

    def preprocess_batch(self, values, config, state, guard=True):
        """``[B]`` tf.string -> ``({feature name: [B, ...]}, present [B] float32)``.

        An empty value means the modality is absent: zero features, present 0.
        ``guard`` (optional in an override: the preprocessor passes it only to
        modalities that take it): name the example a decoder rejects inside the
        graph (serving); off in ``tf.data``, where the task names it after the fact.
        A modality whose :meth:`augments_raw` can be true also takes ``seeds``
        (``[B, 2]`` int64, one per example, given only by the training pipeline):
        with seeds it applies its training-only raw augmentation, without them the
        features must be exactly those of a config without it.
        """
        raise NotImplementedError

    def augments_raw(self, config):
        """True when ``config`` asks for a training-only augmentation of the raw values (then the
        training pipeline computes features every epoch, passing ``seeds`` to :meth:`preprocess_batch`)."""
        return False

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

    # ---- declared for the data and serving path: limits, files, manifests, requests, state -----
    # (everything outside mmkeras/modalities asks these instead of naming a modality)

    limits = {}
    limit_docs = {}
    text_values = False
    # ``(signature, format)`` pairs; a signature is a bytes prefix or ``((offset, bytes), ...)``.
    file_signatures = ()
    # File names whose whole content, read as UTF-8 text, is one value (e.g. ``.txt``).
    file_suffixes = ()
    file_expected = "a file of this modality"  # "is X, not <file_expected>"
    file_noun = None  # what a file of this modality is called when given to another ("an image")

    @property
    def empty_value(self):
        """The raw value meaning "absent": ``""`` for text values, ``b""`` for bytes."""
        return "" if self.text_values else b""

    def file_kind(self, head):
        """The format of a file starting with ``head`` (its first 16 bytes) if it is one of this modality, else None.

        Example:
        ```python
        modality("image").file_kind(b"GIF89a...")  # "GIF"
        ```
        """
        for signature, kind in self.file_signatures:
            parts = ((0, signature),) if isinstance(signature, bytes) else signature
            if all(head[at:at + len(sig)] == sig for at, sig in parts):
                return kind
        return None

    def file_problem(self, head, tail):
        """Why a file of this modality's kind with these first/last 16 bytes is unusable (cut short), or None."""
        return None

    def file_value(self, data):
        """The raw value of a file named by its suffix (``file_suffixes``): its UTF-8 text, stripped.

        Raises:
            ValueError: the bytes are not UTF-8.
        """
        try:
            return data.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise ValueError(f"is not UTF-8 text ({err.reason} at byte {err.start})") from None

    def max_file_bytes(self, limits):
        """The largest file (or manifest cell) accepted, given this modality's resolved ``limits``."""
        return limits.get("max_bytes")

    def feature_rules(self, config, tower):
        """How the ``features`` signature checks fed tensors, beyond "finite floats".

        Args:
            config: the resolved preprocessing config.
            tower: the tower's config (e.g. its ``vocab_size``).

        Returns:
            dict ``{feature name: rule}``; a rule is ``"flag"`` (values 0 or 1) or
            ``("ids", n)`` (integer ids in ``[0, n)``).
        """
        return {}

    def unadapted(self, config):
        """What is missing while :meth:`needs_adapt` holds, for error messages."""
        return f"{self.name} preprocessing state that has not learned from data"

    def adapt_argument(self):
        """What to pass to ``model.adapt(...)``, as written in error messages."""
        return f"{{{self.name!r}: train_values}}"

    def state_summary(self, state):
        """A short description of the learned state (``mmkeras inspect``), or None."""
        return None


def modality(name):
    """The registered :class:`Modality` instance called ``name``."""
    return MODALITIES.get(name)()


def modality_order():
    """Every registered modality name, in ``present`` column order (``order``, then registration)."""
    names = MODALITIES.in_order()
    return sorted(names, key=lambda n: (MODALITIES.get(n).order, names.index(n)))


def modality_limits(name):
    """The default request limits of the modality ``name`` (a fresh dict).

    Example:
    ```python
    modality_limits("image")["max_pixels"]  # 16777216
    ```
    """
    return dict(MODALITIES.get(name).limits)


def default_limits():
    """``{"max_examples": int, <modality>: {limit: default}}`` over every registered modality."""
    return {"max_examples": MAX_EXAMPLES, **{m: modality_limits(m) for m in modality_order()}}


def limit_docs():
    """Why each limit is there: ``{"max_examples": str, <modality>: {limit: str}}``."""
    return {"max_examples": MAX_EXAMPLES_DOC, **{m: dict(MODALITIES.get(m).limit_docs) for m in modality_order()}}


def resolve_limits(preprocessing, overrides=None):
    """The effective limits of a model: preset preprocessing options, then ``overrides``.

    Args:
        preprocessing: dict ``{modality: resolved preprocessing config}`` (the limit
            keys of each config are read; other keys are ignored).
        overrides: dict or None. ``{"max_examples": int, "<modality>": {limit: int}}``,
            e.g. what ``export_saved_model(..., limits=...)`` receives.

    Returns:
        dict ``{"max_examples": int, "<modality>": {limit: int}, ...}`` for the
        model's modalities.

    Raises:
        ValueError: an unknown key or modality (the message lists the known ones),
            or a value that is not a positive int.

    Example:
    ```python
    resolve_limits({"image": {"height": 32, "max_pixels": 10**6}}, {"max_examples": 8})
    # {"max_examples": 8, "image": {"max_bytes": 16777216, "max_pixels": 1000000, ...}}
    ```
    """
    overrides = dict(overrides or {})
    known = ["max_examples", *preprocessing]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"Unknown limit(s) {unknown}; known for this model: {known}")
    out = {"max_examples": check_limit("max_examples", overrides.get("max_examples", MAX_EXAMPLES), "request")}
    for name, config in preprocessing.items():
        defaults = modality_limits(name)
        extra = dict(overrides.get(name) or {})
        bad = sorted(set(extra) - set(defaults))
        if bad:
            raise ValueError(f"Unknown {name} limit(s) {bad}; known: {sorted(defaults)}")
        merged = {k: config.get(k, v) for k, v in defaults.items()}
        merged.update(extra)
        out[name] = {k: check_limit(k, v, name) for k, v in merged.items()}
    return out


def file_modality(path, head):
    """The registered modality a file is: by its name (``file_suffixes``), else by its first bytes, or None.

    Returns:
        ``(name, format)``: ``format`` is None for a file recognised by its name.
    """
    for m in modality_order():
        if str(path).endswith(tuple(MODALITIES.get(m).file_suffixes)):
            return m, None
    return sniff(head)


def sniff(head):
    """``(modality, format)`` of a file starting with ``head`` (its first 16 bytes), or ``(None, None)``."""
    for m in modality_order():
        kind = modality(m).file_kind(head)
        if kind is not None:
            return m, kind
    return None, None


def text_modality(names):
    """The first of ``names`` whose raw values are text (``text_values``), or None."""
    return next((m for m in ordered(names) if MODALITIES.get(m).text_values), None)


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
