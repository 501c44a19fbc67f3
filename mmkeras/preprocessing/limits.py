"""Request limits (moved to :mod:`mmkeras.modalities.limits`, which needs no TensorFlow)."""

from mmkeras.modalities.limits import (  # noqa: F401
    DEFAULT_LIMITS,
    LIMIT_DOCS,
    MAX_TEXT_BYTES,
    MIB,
    check_limit,
    modality_limits,
    resolve_limits,
)
