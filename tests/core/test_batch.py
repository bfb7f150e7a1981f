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


def test_problem_metrics_of_the_fast_path_equal_a_sample_loop() -> None:
    """Errors, paired counts, loss and its standard error, energy and reach of `CascadeProblem.evaluate` (stages
    priced the same for every sample: the batch path) against walking each sample through the cascade."""
    from costmodel import Accelerator, load_technology
    from dse import CascadeProblem
    from nets import Variant, VariantScores, scores_from_logits

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 10, 60)
    made = [VariantScores(v, f"k{i}", {split: scores_from_logits(rng.normal(size=(30, 10)) * 3, labels[rows])
                                       for split, rows in (("calib", slice(0, 30)), ("test", slice(30, 60)))})
            for i, v in enumerate([Variant("mini8"), Variant("mini7"), Variant("lenet")])]
    problem = CascadeProblem.from_scores(made, 2, Accelerator(), load_technology())
    stages = [0, 1, 2]
    thresholds = np.r_[rng.uniform(0, 0.6, (12, 2)), [[np.inf, np.inf], [0.0, 0.0]]]
    values = problem.evaluate(stages, thresholds, "test")
    prices = np.array([cost.energy_pj for cost in problem.stage_costs(stages)])
    margin, correct, big = problem.margin["test"][stages], problem.correct["test"][stages], problem.correct["test"][2]
    for b, vector in enumerate(thresholds):
        final, spent = [], 0.0
        for i in range(margin.shape[1]):
            stage = next(k for k in range(3) if k == 2 or margin[k, i] >= vector[k])
            final.append(bool(correct[stage, i]))
            spent += prices[:stage + 1].sum()
        paired = big.astype(float) - np.array(final, float)
        assert values.errors[b] == final.count(False)
        assert values.worse[b] == int(np.sum(big & ~np.array(final)))
        assert values.better[b] == int(np.sum(~big & np.array(final)))
        assert values.accuracy_loss_se_pct[b] == pytest.approx(100 * paired.std() / np.sqrt(len(final)), abs=1e-12)
        assert values.energy_j[b] == pytest.approx(spent / len(final) * 1e-12, rel=1e-12)
