"""The fast batch path (`dse.core._batch`) against a sample-by-sample loop on random cascades, ties and +inf
thresholds included, and the problem's metrics from it against the same loop."""

from __future__ import annotations

import numpy as np
import pytest

from dse.core._batch import BatchEvaluator


def loop(confidence: np.ndarray, correct: np.ndarray, big: np.ndarray, energy: np.ndarray, latency: np.ndarray,
         thresholds: np.ndarray) -> tuple[int, int, float, float, list[float]]:
    """Errors, errors where the big net is right, mean energy and latency, and each stage's reach, one sample at a
    time."""
    stages, n = confidence.shape
    errors = worse = 0
    spent = waited = 0.0
    reached = [0] * stages
    for i in range(n):
        for stage in range(stages):
            reached[stage] += 1
            spent += energy[stage]
            waited += latency[stage]
            if stage == stages - 1 or confidence[stage, i] >= thresholds[stage]:
                errors += not correct[stage, i]
                worse += (not correct[stage, i]) and bool(big[i])
                break
    return errors, worse, spent / n, waited / n, [r / n for r in reached]


@pytest.mark.parametrize("stages", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(4))
def test_batch_outcomes_match_the_sample_loop(stages: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    confidence = np.round(rng.random((stages, n)), 1)  # many ties
    correct = rng.random((stages, n)) < 0.7
    big = rng.random(n) < 0.8
    energy, latency = rng.random(stages) * 10, rng.random(stages)
    picks = [np.r_[confidence[k], np.inf, -1.0] for k in range(stages - 1)]
    thresholds = np.array([[rng.choice(p) for p in picks] for _ in range(25)]).reshape(25, stages - 1)
    got = BatchEvaluator(confidence, correct, big, energy, latency).outcomes(thresholds)
    for b, vector in enumerate(thresholds):
        errors, worse, spent, waited, reach = loop(confidence, correct, big, energy, latency, vector)
        assert (got.errors[b], got.worse[b]) == (errors, worse)
        assert got.energy[b] == pytest.approx(spent, rel=1e-12) and got.latency[b] == pytest.approx(waited, rel=1e-12)
        assert got.reach[b].tolist() == pytest.approx(reach, rel=1e-12)


def test_an_unknown_latency_stays_unknown() -> None:
    confidence, correct = np.array([[0.2, 0.9], [0.5, 0.5]]), np.ones((2, 2), bool)
    got = BatchEvaluator(confidence, correct, np.ones(2, bool), np.array([1.0, 4.0]),
                         np.array([np.nan, 1.0])).outcomes(np.array([[0.5]]))
    assert np.isnan(got.latency).all() and got.energy.tolist() == [3.0]
