"""The vectorised cascade evaluator agrees with a slow per-sample reference."""

from __future__ import annotations

import numpy as np
import pytest

from dse import evaluate_cascade, exit_stages, reference_cascade


@pytest.mark.parametrize("n_stages", [1, 2, 3, 4])
@pytest.mark.parametrize("per_sample", [False, True])
def test_matches_reference(n_stages: int, per_sample: bool) -> None:
    rng = np.random.default_rng(n_stages + 10 * per_sample)
    n = 300
    margins = rng.random((n_stages, n)).astype(np.float32)
    correct = rng.random((n_stages, n)) < 0.8
    energy = rng.uniform(1, 100, (n_stages, n)) if per_sample else rng.uniform(1, 100, n_stages)
    thresholds = rng.random((25, n_stages - 1))
    result = evaluate_cascade(margins, correct, energy, np.ones(n_stages), thresholds)
    for b, vector in enumerate(thresholds):
        accuracy, mean_energy = reference_cascade(margins, correct, energy, vector)
        assert result.accuracy[b] == pytest.approx(accuracy)
        assert result.energy_pj[b] == pytest.approx(mean_energy)
    assert np.all(result.reach_fraction[:, 0] == 1.0)


def test_exit_rules() -> None:
    margins = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.1], [0.0, 0.0, 0.0]])
    exits = exit_stages(margins, np.array([[0.5, 0.5]]))
    assert exits.tolist() == [[0, 1, 0]]  # margin >= threshold exits; the last stage always answers
    assert exit_stages(margins, np.array([[1.0, 1.0]])).tolist() == [[2, 2, 2]]


def test_wrong_threshold_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="need 1 thresholds"):
        evaluate_cascade(np.zeros((2, 3)), np.ones((2, 3), bool), np.ones(2), np.ones(2), np.zeros((1, 2)))
