"""Evaluation beyond accuracy: robustness to missing/corrupted modalities, cross-modal retrieval."""

from mmkeras.evaluation.corruptions import gaussian_pixel_noise, white_noise_snr, word_dropout
from mmkeras.evaluation.features import compute_features
from mmkeras.evaluation.retrieval import cross_modal_recall, retrieval_recall
from mmkeras.evaluation.robustness import RobustnessReport, evaluate_robustness

__all__ = [
    "RobustnessReport", "compute_features", "cross_modal_recall", "evaluate_robustness", "gaussian_pixel_noise",
    "retrieval_recall", "white_noise_snr", "word_dropout",
]
