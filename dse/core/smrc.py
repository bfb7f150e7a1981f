"""Score-margin result classifier (SMRC): how well a margin threshold predicts a correct answer, for any variant."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.core.sweep import accept_sweep


@dataclass(frozen=True)
class SMRCResult:
    """ROC of "margin >= t predicts a correct inference", its AUC, and margin histograms (Fig. 1-2)."""

    false_positive_rate: np.ndarray  # wrong inferences accepted, as t falls
    true_positive_rate: np.ndarray  # correct inferences accepted
    thresholds: np.ndarray
    auc: float
    bin_edges: np.ndarray
    hist_correct: np.ndarray
    hist_wrong: np.ndarray


def roc_curve_margins(margin: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points for every distinct margin threshold, from accept-nothing to accept-all."""
    thresholds, accepted, true_pos = accept_sweep(margin, correct.astype(np.int64))
    positives = int(correct.sum())
    negatives = len(correct) - positives
    return (accepted - true_pos) / max(negatives, 1), true_pos / max(positives, 1), thresholds


def smrc(margin: np.ndarray, correct: np.ndarray, bins: int = 20) -> SMRCResult:
    """SMRC of one variant's per-sample margins and correctness (AUC by the trapezoid rule)."""
    margin = np.asarray(margin, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if correct.all() or not correct.any():
        raise ValueError("SMRC needs both correct and wrong inferences")
    fpr, tpr, thresholds = roc_curve_margins(margin, correct)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return SMRCResult(fpr, tpr, thresholds, float(np.trapezoid(tpr, fpr)), edges,
                      np.histogram(margin[correct], edges)[0], np.histogram(margin[~correct], edges)[0])
