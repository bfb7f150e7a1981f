"""Many threshold vectors of one cascade whose stages cost the same for every sample, in time per vector independent
of the sample count (sorted confidences and prefix sums, `CascadeEvaluator`), with the counts paired with the big net.

The per-sample reference is `dse.core.evaluate.evaluate_cascade` (every sample's exit stage, in (B, N) masks).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from dse.core._exact import CascadeEvaluator

MEMORY_BYTES = 32 * 2**20  # working memory of each of the two evaluators


def _block(n: int) -> int:
    """Samples per block of a 3-stage evaluator's table: twice the evaluator's default, so that its table (built for
    each cascade and split) costs a quarter, within MEMORY_BYTES; a query then scans two blocks."""
    cells = MEMORY_BYTES // 2 // (8 * 5)  # five weights per table cell (`CascadeEvaluator._build_quadrants`)
    return max(1, math.isqrt(n) // 2, -(-n // max(1, math.isqrt(cells) - 1)))


@dataclass(frozen=True)
class Outcomes:
    """B threshold vectors of one cascade on N samples: (B,) arrays, (B, S) `reach`."""

    errors: np.ndarray  # int64 wrong final answers
    worse: np.ndarray  # int64 wrong final answers where the big net is right
    energy: np.ndarray  # mean per sample, in the unit of the stage costs
    latency: np.ndarray  # mean per sample
    reach: np.ndarray  # fraction of the samples that run each stage


class BatchEvaluator:
    """One cascade whose stages cost the same for every sample, set up once (sorted confidences, prefix sums) for any
    number of batches of threshold vectors: confidence and correct (S, N), the big net's correct (N,), per-stage
    energy and latency (S,) paid by every sample that runs the stage (a NaN latency: unknown, so is the cascade's)."""

    def __init__(self, confidence: np.ndarray, correct: np.ndarray, big_correct: np.ndarray, energy: np.ndarray,
                 latency: np.ndarray) -> None:
        self.known_latency = bool(np.isfinite(latency).all())  # a measured price may come without a latency
        block = _block(np.shape(confidence)[1])
        self.outcome = CascadeEvaluator(confidence, correct, energy,
                                        latency if self.known_latency else np.zeros(len(latency)), MEMORY_BYTES,
                                        block)
        # counted again with the same answering stages: an answer is "wrong" here when wrong where the big net is right
        wrong_where_big_right = ~(~np.asarray(correct, bool) & np.asarray(big_correct, bool)[None, :])
        zeros = np.zeros(len(confidence))
        self.worse = CascadeEvaluator(confidence, wrong_where_big_right, zeros, zeros, MEMORY_BYTES, block,
                                      sorted_like=self.outcome)

    def outcomes(self, thresholds: np.ndarray) -> Outcomes:
        """Outcomes of threshold vectors (B, S-1)."""
        thresholds = np.atleast_2d(np.asarray(thresholds, dtype=np.float64))
        result = self.outcome.evaluate(thresholds)
        latency = result.latency if self.known_latency else np.full(len(thresholds), np.nan)
        return Outcomes(result.errors, self.worse.evaluate(thresholds).errors, result.energy, latency,
                        result.reach_fraction)
