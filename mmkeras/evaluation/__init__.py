"""Evaluation beyond accuracy: a classification report, robustness to missing/corrupted modalities,
cross-modal retrieval, per-modality explanations (Shapley values over modality presence, integrated gradients)."""

from mmkeras.evaluation.classification_report import ClassificationReport, report
from mmkeras.evaluation.confusion import confusion_matrix, confusion_png, confusion_text
from mmkeras.evaluation.corruptions import gaussian_pixel_noise, white_noise_snr, word_dropout
from mmkeras.evaluation.explain import Explanation, explain, log_explanations
from mmkeras.evaluation.features import compute_features
from mmkeras.evaluation.retrieval import cross_modal_recall, retrieval_recall
from mmkeras.evaluation.robustness import RobustnessReport, evaluate_robustness

__all__ = [
    "ClassificationReport", "Explanation", "RobustnessReport", "compute_features", "confusion_matrix", "confusion_png",
    "confusion_text", "cross_modal_recall", "evaluate_robustness", "explain", "gaussian_pixel_noise",
    "log_explanations", "report",
    "retrieval_recall", "white_noise_snr", "word_dropout",
]
