"""Exit criteria: a per-sample confidence in [0, 1] from softmax scores; a stage answers when it reaches a threshold."""

from __future__ import annotations

import numpy as np

from costmodel import UserError

CRITERIA = ("margin", "max_softmax", "entropy")  # top-1 minus top-2 (the seeds'), top-1 (ATHEENA), entropy (BranchyNet)


class CriterionError(UserError):
    """An exit criterion that is not one of CRITERIA."""


def confidence(scores: np.ndarray, criterion: str) -> np.ndarray:
    """Per-sample confidence (..., N) of softmax `scores` (..., N, classes) under `criterion`, higher = surer:
    the top-1 minus top-2 margin, the top-1 probability, or 1 - entropy / log(classes)."""
    probs = np.asarray(scores, dtype=np.float64)
    if criterion == "margin":
        top2 = np.sort(probs, axis=-1)[..., -2:]
        return (top2[..., 1] - top2[..., 0]).astype(np.float32)
    if criterion == "max_softmax":
        return probs.max(axis=-1).astype(np.float32)
    if criterion == "entropy":
        terms = np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1.0)), 0.0)
        return np.clip(1.0 + terms.sum(axis=-1) / np.log(probs.shape[-1]), 0.0, 1.0).astype(np.float32)
    raise CriterionError(f"exit criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
