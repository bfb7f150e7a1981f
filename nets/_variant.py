"""Variants: one runnable network configuration, and its cached per-sample results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nets._arch import Architecture
from nets._zoo import architecture


@dataclass(frozen=True)
class TrainingConfig:
    """How a candidate is trained (part of the cache key)."""

    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    """A network at width fraction `width`: the unit that is trained, evaluated, cached and priced."""

    net: str
    width: float = 1.0

    @property
    def name(self) -> str:
        """Display name, e.g. 'lenet' or 'lenet@w0.25'."""
        return self.net if self.width == 1.0 else f"{self.net}@w{self.width:g}"

    @property
    def architecture(self) -> Architecture:
        """The zoo architecture this variant runs."""
        return architecture(self.net)


@dataclass(frozen=True)
class SplitScores:
    """Per-sample results of one variant on one split (aligned with the split's samples)."""

    prediction: np.ndarray  # (N,) int16 predicted class
    correct: np.ndarray  # (N,) bool
    margin: np.ndarray  # (N,) float32 softmax top-1 minus top-2
    scores: np.ndarray  # (N, classes) float16 softmax scores

    @property
    def accuracy(self) -> float:
        """Fraction of correct predictions."""
        return float(self.correct.mean())


@dataclass(frozen=True)
class VariantScores:
    """A variant's cached results on the calibration and test splits."""

    variant: Variant
    key: str
    splits: dict[str, SplitScores] = field(default_factory=dict)


def scores_from_logits(logits: np.ndarray, labels: np.ndarray) -> SplitScores:
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
    )
