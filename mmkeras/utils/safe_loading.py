"""Untrusted ``.keras`` files: nothing read outside the archive, a bounded cost to load.

``keras.saving.load_model(path)`` runs in Keras *safe mode* by default: a saved
config may describe objects but not run code. While Keras deserialises in safe
mode (:func:`in_safe_mode`), every mmkeras part follows two more rules, through
the functions here (a new part gets them by calling the same functions):

1. **Nothing outside the archive.** An option that names a file, folder, URL or hub
   handle (EfficientNet-Lite ``weights``, keras-hub ``preset`` and the preprocessing
   it implies, text ``vocabulary_file``) is refused by
   :func:`refuse_external_reference` before anything is resolved or opened, with the
   same message whether or not the target exists. Models mmkeras saves never name
   one: pretrained weights and vocabularies are kept inside the archive
   (``Tower.portable_config``), so they load under safe mode.
2. **Bounded cost.** A model is built inside :func:`budgeted_build`: its variables
   are created *deferred* (Keras's stateless scope: shapes, no memory), then its
   parameter count and per-example activation size (the elements of every layer's
   input, batch axis left out) are checked against the budgets below before any
   variable is allocated. Over a budget, a ``ValueError`` names the largest weight
   or activation and the config options whose values are its sizes. A part whose
   *construction* grows with an option (a stack of N blocks) first checks that
   count with :func:`check_layer_count`.

Budgets (safe mode only), against the library presets and pretrained towers
(``tests/test_load_budget.py`` checks the margins):

- :data:`MAX_PARAMETERS` = 100,000,000 parameters. Largest presets: ``reference_base``
  40.6 M (a benchmark preset), ``image_audio_text_pretrained`` 27.2 M, ``text_minilm``
  (all-MiniLM-L6-v2) 22.8 M, ``image_efficientnet_lite0`` 3.7 M; the small presets
  under 0.7 M. A file at the budget still costs its initialisation: Keras/TensorFlow
  peak at about 20 bytes per parameter while creating random initial values (about
  2.8 GiB of RSS at 99 M parameters, 0.9 GiB for TensorFlow itself).
- :data:`MAX_ACTIVATIONS` = 100,000,000 elements per example. Largest:
  ``image_audio_text_pretrained`` 14.2 M, ``image_efficientnet_lite0`` 13.9 M (224x224).
- :data:`MAX_LAYERS` = 2,000 layers made by one option of a part (EfficientNet-Lite0
  has 109 sub-layers).

A trusted file over a budget, or one naming files, loads with
``keras.saving.load_model(path, safe_mode=False)``.
"""

import contextlib
import math

MAX_PARAMETERS = 100_000_000
MAX_ACTIVATIONS = 100_000_000
MAX_LAYERS = 2_000

class UnsafeConfigError(ValueError):
    """A config refused under safe mode (a reference outside the archive, a size over the budget)."""


TRUSTED_HINT = ("If you trust this file, load it with keras.saving.load_model(path, safe_mode=False) "
                "(then save it again: mmkeras keeps weights and vocabularies inside the archive).")


def in_safe_mode():
    """True while Keras deserialises in safe mode (``load_model(..., safe_mode=True)``, the default).

    Example:
    ```python
    in_safe_mode()  # False here; True inside keras.saving.load_model(path)
    ```
    """
    from keras.src.saving import serialization_lib

    return bool(serialization_lib.in_safe_mode())


def _short(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def refuse_external_reference(key, value, what):
    """Under safe mode, refuses an option that names something outside the archive.

    Called by every part that would resolve a path, folder, URL or hub handle from
    its config, before resolving it; nothing is checked on disk (the answer does not
    reveal what exists). Outside safe mode, or with ``value`` None, it does nothing.

    Args:
        key: str. The option (``"weights"``, ``"preset"``).
        value: the option's value.
        what: str. The part, for the message (``"image/efficientnet_lite tower"``).

    Example:
    ```python
    refuse_external_reference("weights", self.weights_source, "image/efficientnet_lite tower")
    ```
    """
    if value is None or not in_safe_mode():
        return
    raise UnsafeConfigError(
        f"{what}: option {key!r}={_short(value)} names a file, folder, URL or hub handle outside the model "
        "archive, and Keras safe mode forbids reading anything a saved config names (it could be any file on "
        f"this machine or any address). Models saved by mmkeras keep their weights inside the archive. "
        f"{TRUSTED_HINT}")


def _over_budget(what, quantity, count, budget, culprit, config):
    options = _options_matching(config, culprit[1]) if culprit else []
    named = (f"; options with these sizes: {', '.join(options)}" if options else "")
    largest = f" (largest: {culprit[0]} {list(culprit[1])}{named})" if culprit else ""
    return UnsafeConfigError(
        f"{what}: the config asks for {count:,} {quantity}{largest}, over the safe-mode budget of {budget:,} "
        "(mmkeras.utils.safe_loading). Loading it would allocate memory an untrusted file should not get. "
        f"{TRUSTED_HINT}")


def check_layer_count(what, key, count):
    """Under safe mode, refuses a part whose option ``key`` would construct ``count`` layers (> MAX_LAYERS).

    For parts whose construction itself (before any variable) grows with an option.

    Example:
    ```python
    check_layer_count("image/efficientnet_lite tower", "stages", 7 * sum(s[0] for s in stages))
    ```
    """
    if in_safe_mode() and count > MAX_LAYERS:
        raise UnsafeConfigError(f"{what}: option {key!r} makes {count:,} layers, over the safe-mode budget of "
                         f"{MAX_LAYERS:,} layers per part (mmkeras.utils.safe_loading). {TRUSTED_HINT}")


def _leaves(value, path=""):
    """``(dotted path, int)`` for every integer in a nested config."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")


def _options_matching(config, shape):
    """Config options whose value is ``shape``'s largest size (the likely cause), at most four."""
    largest = max((d for d in shape if isinstance(d, int)), default=0)
    return [f"{path}={value}" for path, value in _leaves(config) if value == largest > 1][:4]


def _elements(shape):
    return math.prod(d or 1 for d in shape[1:])  # per example: the batch axis left out


def _shapes(value):
    """Every shape tuple inside a build-shapes structure (a tuple, a list of them, a dict)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _shapes(v)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(d, (int, type(None))) for d in value):
        yield tuple(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _shapes(v)


class _Measure:
    """What a budgeted build measures: the layers whose inputs count as activations."""

    def __init__(self):
        self.layers = []

    def measure(self, layer):
        """Counts the inputs of ``layer`` and of every layer inside it as activations."""
        self.layers.append(layer)

    def largest_activations(self):
        """``(per-example elements of all layer inputs, (path, shape) of the largest one))``."""
        total, largest = 0, None
        seen = set()
        for top in self.layers:
            for layer in top._flatten_layers(include_self=True, recursive=True):
                if id(layer) in seen:
                    continue
                seen.add(id(layer))
                for shape in _shapes(getattr(layer, "_build_shapes_dict", None) or {}):
                    n = _elements(shape)
                    total += n
                    if largest is None or n > _elements(largest[1]):
                        largest = (f"input of layer {layer.path or layer.name!r}", shape)
        return total, largest


def _uninitialized():
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)


@contextlib.contextmanager
def budgeted_build(what, config):
    """Under safe mode, builds with deferred variables and checks the budgets before allocating them.

    Layers created and built in the ``with`` block get variables with a shape and no
    memory. On leaving it, the parameter count (every variable created in the block)
    and per-example activations (of the layers passed to ``measure``) are checked;
    within the budgets the variables are allocated and initialised as usual, over
    them a ``ValueError`` is raised and nothing is allocated. Outside safe mode, or
    inside an outer budgeted build (which counts everything), it only runs the block.

    Args:
        what: str. The model or part, for the message.
        config: dict. Its config; options whose values match an oversized shape are named.

    Example:
    ```python
    with budgeted_build("tower 'image_tower'", self.get_config()) as budget:
        self.encode_shape(input_shape, build=True)
        budget.measure(self)
    ```
    """
    from keras.src.backend.common.stateless_scope import StatelessScope, in_stateless_scope

    measure = _Measure()
    if not in_safe_mode() or in_stateless_scope():
        yield measure
        return
    known = {id(v) for v in _uninitialized()}
    created = []
    try:
        with StatelessScope(initialize_variables=False):
            yield measure
        # Activations first: an oversized input (image side, sequence length) is named as itself,
        # not as the position embedding it also inflates.
        activations, largest = measure.largest_activations()
        if activations > MAX_ACTIVATIONS:
            raise _over_budget(what, "activation elements per example", activations, MAX_ACTIVATIONS, largest,
                               config)
        created = [v for v in _uninitialized() if id(v) not in known]
        parameters = sum(math.prod(v.shape) for v in created)
        if parameters > MAX_PARAMETERS:
            big = max(created, key=lambda v: math.prod(v.shape))
            raise _over_budget(what, "parameters", parameters, MAX_PARAMETERS, (f"weight {big.path!r}", big.shape),
                               config)
        for v in created:
            v._deferred_initialize()
    finally:
        # Deferred variables this build made leave Keras's list: allocated above, or dropped with the model.
        created = {id(v) for v in _uninitialized() if id(v) not in known}
        _uninitialized()[:] = [v for v in _uninitialized() if id(v) not in created]
