"""Preset registry: named model configs and :func:`build_model`.

Only library presets are built in; anything else (the benchmarks' presets,
benchmarks/presets.py; your own) enters through :func:`register_preset`.
"""

from mmkeras.presets.registry import build_model, get_preset, list_presets, register_preset

__all__ = ["build_model", "get_preset", "list_presets", "register_preset"]
