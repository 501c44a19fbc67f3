"""Evaluation beyond accuracy: a classification report, robustness to missing/corrupted modalities,
cross-modal retrieval."""

from mmkeras.evaluation.classification_report import ClassificationReport, report
from mmkeras.evaluation.confusion import confusion_matrix, confusion_png, confusion_text
from mmkeras.evaluation.corruptions import gaussian_pixel_noise, white_noise_snr, word_dropout
from mmkeras.evaluation.features import compute_features
from mmkeras.evaluation.retrieval import cross_modal_recall, retrieval_recall
from mmkeras.evaluation.robustness import RobustnessReport, evaluate_robustness

__all__ = [
    "ClassificationReport", "RobustnessReport", "compute_features", "confusion_matrix", "confusion_png",
    "confusion_text", "cross_modal_recall", "evaluate_robustness", "gaussian_pixel_noise", "report",
    "retrieval_recall", "white_noise_snr", "word_dropout",
]
