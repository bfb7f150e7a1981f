"""Many threshold vectors of one cascade whose stages cost the same for every sample, in time per vector independent
of the sample count (sorted confidences and prefix sums, `CascadeEvaluator`), with the counts paired with the big net.

The per-sample reference is `dse.core.evaluate.evaluate_cascade` (every sample's exit stage, in (B, N) masks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse.core._exact import CascadeEvaluator


@dataclass(frozen=True)
class Outcomes:
    """B threshold vectors of one cascade on N samples: (B,) arrays, (B, S) `reach`."""

    errors: np.ndarray  # int64 wrong final answers
    worse: np.ndarray  # int64 wrong final answers where the big net is right
    energy: np.ndarray  # mean per sample, in the unit of the stage costs
    latency: np.ndarray  # mean per sample
    reach: np.ndarray  # fraction of the samples that run each stage


def batch_outcomes(confidence: np.ndarray, correct: np.ndarray, big_correct: np.ndarray, energy: np.ndarray,
                   latency: np.ndarray, thresholds: np.ndarray) -> Outcomes:
    """Outcomes of threshold vectors (B, S-1) on a cascade: confidence and correct (S, N), the big net's correct
    (N,), per-stage energy and latency (S,) paid by every sample that runs the stage."""
    thresholds = np.atleast_2d(np.asarray(thresholds, dtype=np.float64))
    result = CascadeEvaluator(confidence, correct, energy, latency).evaluate(thresholds)
    # a second count over the same exits: a final answer is "wrong" here when it is wrong and the big net is right
    wrong_where_big_right = ~(~np.asarray(correct, bool) & np.asarray(big_correct, bool)[None, :])
    zeros = np.zeros(len(confidence))
    worse = CascadeEvaluator(confidence, wrong_where_big_right, zeros, zeros).evaluate(thresholds).errors
    return Outcomes(result.errors, worse, result.energy, result.latency, result.reach_fraction)
