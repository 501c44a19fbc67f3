"""Model selection: ``mmkeras.tune`` / ``mmkeras tune`` on KerasTuner, with single-modality baselines
and a paired verdict on whether fusion is worth it (docs/tune.md).

``space`` holds the search space, ``trials`` the ``trials.csv`` and HParams records,
``search`` one KerasTuner search (budget, resume, distribution) and ``tuner`` the whole
run. Single-modality variants of a preset: :func:`mmkeras.presets.custom.single_modality_preset`.
"""

from mmkeras.tuning.space import SEARCH_SPACE
from mmkeras.tuning.tuner import TuneResult, tune

__all__ = ["SEARCH_SPACE", "TuneResult", "tune"]
