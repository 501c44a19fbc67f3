"""Request limits of every registered modality: each modality declares its own, this gathers them.

``DEFAULT_LIMITS`` and ``LIMIT_DOCS`` are computed on access from the registered
modalities (:func:`mmkeras.modalities.base.default_limits`, ``limit_docs``), so a
modality registered later appears in them too.
"""

from mmkeras.modalities.base import default_limits, limit_docs, modality_limits, resolve_limits  # noqa: F401
from mmkeras.modalities.limits import MAX_TEXT_BYTES, MIB, check_limit  # noqa: F401


def __getattr__(name):
    if name == "DEFAULT_LIMITS":
        return default_limits()
    if name == "LIMIT_DOCS":
        return limit_docs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
