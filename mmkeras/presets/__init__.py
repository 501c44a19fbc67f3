"""Preset registry: named model configs and :func:`build_model`."""

from mmkeras.presets.registry import build_model, get_preset, list_presets, register_preset

__all__ = ["build_model", "get_preset", "list_presets", "register_preset"]
