"""Score-margin result classifier (SMRC, Park 2015 §3): how well a margin threshold predicts correctness."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    order = np.argsort(-margin, kind="stable")
    sorted_margin, sorted_correct = margin[order], correct[order].astype(np.int64)
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_margin)), len(sorted_margin) - 1]
    true_pos = np.cumsum(sorted_correct)[last_of_tie]
    false_pos = (last_of_tie + 1) - true_pos
    positives, negatives = sorted_correct.sum(), len(sorted_correct) - sorted_correct.sum()
    tpr = np.r_[0.0, true_pos / max(positives, 1)]
    fpr = np.r_[0.0, false_pos / max(negatives, 1)]
    return fpr, tpr, np.r_[np.inf, sorted_margin[last_of_tie]]


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
