"""Per-sample results of one variant on one split (`SplitScores`), and how they are read from raw logits.

Apart from the variants (`nets.scores._variant`) so that the readers of imported logits need no variant, zoo or model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nets.models._confidence import confidence


@dataclass(frozen=True)
class SplitScores:
    """Per-sample results of one variant on one split (aligned with the split's samples)."""

    prediction: np.ndarray  # (N,) int16 predicted class
    correct: np.ndarray  # (N,) bool
    margin: np.ndarray  # (N,) float32 softmax top-1 minus top-2
    scores: np.ndarray | None  # (N, classes) float16 softmax scores (None: only the confidences were kept)
    ops: np.ndarray | None = None  # (N,) float64 operations actually executed per sample, if the variant varies them
    confidences: dict[str, np.ndarray] | None = None  # criterion -> (N,) float32, kept instead of the scores

    @property
    def accuracy(self) -> float:
        """Fraction of correct predictions."""
        return float(self.correct.mean())

    def confidence(self, criterion: str) -> np.ndarray:
        """(N,) float32 confidence under an exit criterion: the margin, a kept one, or one computed from the scores."""
        if criterion == "margin":
            return self.margin
        if self.confidences is not None and criterion in self.confidences:
            return self.confidences[criterion]
        if self.scores is None:
            raise KeyError(f"no scores to compute the '{criterion}' confidence from")
        return confidence(self.scores, criterion)

    def take(self, rows: np.ndarray) -> "SplitScores":
        """The same results for a subset of the samples (indices or a mask)."""
        return SplitScores(self.prediction[rows], self.correct[rows], self.margin[rows],
                           None if self.scores is None else self.scores[rows],
                           None if self.ops is None else self.ops[rows],
                           None if self.confidences is None else {k: v[rows] for k, v in self.confidences.items()})


def scores_from_logits(logits: np.ndarray, labels: np.ndarray, ops: np.ndarray | None = None) -> SplitScores:
    """Softmax, prediction, correctness and top-1 minus top-2 margin from raw logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    top2 = np.sort(probs, axis=1)[:, -2:]
    prediction = probs.argmax(axis=1)
    return SplitScores(
        prediction.astype(np.int16),
        prediction == labels,
        (top2[:, 1] - top2[:, 0]).astype(np.float32),
        probs.astype(np.float16),
        ops,
    )
