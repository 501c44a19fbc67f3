"""Preset registry: named model configs and :func:`build_model`.

Benchmark presets (AV-digits, SST-2, the reference architecture) are registered
only on request: :func:`register_benchmark_presets`.
"""

from mmkeras.presets.benchmark_presets import register_benchmark_presets
from mmkeras.presets.registry import build_model, get_preset, list_presets, register_preset

__all__ = ["build_model", "get_preset", "list_presets", "register_benchmark_presets", "register_preset"]
