"""Preset registry: named model configs and :func:`build_model`."""

from mmkeras.presets import benchmark_presets  # noqa: F401 (registers the benchmark presets)
from mmkeras.presets.registry import build_model, get_preset, list_presets, register_preset

__all__ = ["build_model", "get_preset", "list_presets", "register_preset"]
