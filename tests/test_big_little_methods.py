"""Park 2015 methods: SMRC (ROC/AUC), static lambda threshold (Eq. 4), dynamic hill-climbing (Fig. 5)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dse.core.smrc import smrc
from dse.mechanisms.big_little.park2015 import (DEFAULT_LAMBDAS, ThresholdError, hill_climb, lambda_sweep,
                                                paper_static_choice, select_alpha, static_objective, static_threshold)


def _random_pair(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    margin = np.round(rng.random(n), 3)  # ties on purpose
    correct_little = rng.random(n) < 0.3 + 0.7 * margin
    correct_big = rng.random(n) < 0.95
    return margin, correct_little, correct_big


@pytest.mark.parametrize("seed", range(5))
def test_smrc_auc_matches_sklearn(seed: int) -> None:
    margin, correct, _ = _random_pair(seed)
    result = smrc(margin, correct)
    assert result.auc == pytest.approx(roc_auc_score(correct, margin), abs=1e-12)
    assert result.hist_correct.sum() == correct.sum() and result.hist_wrong.sum() == (~correct).sum()
    assert result.true_positive_rate[-1] == 1.0 and result.false_positive_rate[-1] == 1.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 2.5, 10.0])
def test_static_exact_sweep_equals_fine_grid(seed: int, lam: float) -> None:
    margin, correct_little, correct_big = _random_pair(seed)
    exact = static_threshold(margin, correct_little, correct_big, lam)
    grid = np.linspace(0.0, 1.0005, 2002)  # step 0.0005 hits every 3-decimal margin
    brute = static_objective(margin, correct_little, correct_big, lam, grid)
    assert exact.objective == pytest.approx(brute.max(), abs=1e-12)
    at_exact = static_objective(margin, correct_little, correct_big, lam, np.array([exact.threshold]))[0]
    assert at_exact == pytest.approx(exact.objective, abs=1e-12)


def test_static_lambda_trades_gain_for_loss() -> None:
    margin, correct_little, correct_big = _random_pair(7)
    thetas = [static_threshold(margin, correct_little, correct_big, lam).threshold for lam in (0.0, 1.0, 5.0, 50.0)]
    assert thetas[0] == margin.min()  # lambda = 0: accept everything
    assert thetas == sorted(thetas)  # more weight on loss -> higher threshold
    choice = paper_static_choice(margin, correct_little, correct_big, max_loss_pct=1.0)
    assert choice.accuracy_loss_pct <= 1.0


@pytest.mark.parametrize("seed", range(3))
def test_lambda_sweep_sorts_once_and_lands_where_each_lambda_alone_does(seed: int) -> None:
    margin, correct_little, correct_big = _random_pair(seed)
    points = lambda_sweep(margin, correct_little, correct_big, DEFAULT_LAMBDAS)
    assert [p.threshold for p in points] == [static_threshold(margin, correct_little, correct_big, float(lam)).threshold
                                             for lam in DEFAULT_LAMBDAS]


def test_bad_threshold_inputs() -> None:
    margin, correct_little, correct_big = _random_pair(0)
    with pytest.raises(ThresholdError, match="lambda must be >= 0, got -1"):
        static_threshold(margin, correct_little, correct_big, -1.0)
    with pytest.raises(ThresholdError, match="alpha and beta must be > 0"):
        hill_climb(margin, margin, correct_little, correct_big, alpha=0.0)
    with pytest.raises(ThresholdError, match="alphas must be"):
        select_alpha(margin, margin, correct_little, correct_big, 0.3, alphas=np.array([]))


def test_hill_climber_follows_fig5_step_by_step() -> None:
    # Period 1: one sample per step. alpha = beta = 1, so PSI(t) = m_little if m_little >= t else m_big.
    m_little = np.array([0.50, 0.50, 0.50, 0.50, 0.80])
    m_big = np.array([0.90, 0.20, 0.70, 0.50, 0.10])
    correct = np.ones(5, dtype=bool)
    result = hill_climb(m_little, m_big, correct, correct, alpha=1.0, theta0=0.4, delta0=0.2, period=1)
    # step 1: theta .4, cand .6: PSI .5 vs .9 -> cand wins: theta .6, delta .24
    # step 2: theta .6, cand .84: PSI .2 vs .2 -> equal: theta .84, delta -.24
    # step 3: theta .84, cand .60: PSI .7 vs .7 -> equal: theta .60, delta .24
    # step 4: theta .60, cand .84: PSI .5 vs .5 -> equal: theta .84, delta -.24
    # step 5: theta .84, cand .60: PSI .1 vs .8 -> cand wins: theta .60, delta -.288
    assert result.thresholds == pytest.approx([0.4, 0.6, 0.84, 0.60, 0.84, 0.60])
    # a case where theta wins: theta .3, cand .5, m_little .4 -> PSI(.3)=.4 > PSI(.5)=m_big .1: delta -> -0.1
    two = hill_climb(np.array([0.4, 0.4]), np.array([0.1, 0.1]), correct[:2], correct[:2], alpha=1.0,
                     theta0=0.3, delta0=0.2, period=1)
    # step 2: theta .3, cand .2 (delta -.1): PSI .4 vs .4 -> equal: theta .2, delta .1
    assert two.thresholds == pytest.approx([0.3, 0.3, 0.2])


def test_hill_climber_applies_the_larger_threshold() -> None:
    m_little = np.array([0.45, 0.45])
    m_big = np.array([0.9, 0.9])
    result = hill_climb(m_little, m_big, np.array([False, False]), np.array([True, True]), alpha=1.0, theta0=0.4,
                        delta0=0.1, period=2, energy_little_pj=1.0, energy_big_pj=10.0)
    assert result.big_fraction == 1.0 and result.accuracy == 1.0  # max(.4, .5) = .5 > .45: big net answers
    assert result.energy_pj == pytest.approx(11.0)
