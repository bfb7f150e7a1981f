"""Dynamic threshold adjustment of Park 2015 §4.3 (Fig. 5): hill-climbing PSI_approx over a stream."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse._static import ThresholdError


@dataclass(frozen=True)
class DynamicResult:
    """A simulated stream: threshold after each sample period, accuracy, big-net use, energy."""

    thresholds: np.ndarray  # theta at the start of each period, then the final theta
    accuracy: float
    big_fraction: float
    energy_pj: float


def psi_approx(margin_little: np.ndarray, margin_big: np.ndarray, threshold: float, alpha: float,
               beta: float) -> float:
    """PSI_approx: alpha * SM_little where the little net is accepted, beta * SM_big elsewhere."""
    return float(np.where(margin_little >= threshold, alpha * margin_little, beta * margin_big).sum())


def hill_climb(margin_little: np.ndarray, margin_big: np.ndarray, correct_little: np.ndarray,
               correct_big: np.ndarray, *, alpha: float, beta: float = 1.0, theta0: float = 0.5,
               delta0: float = 0.05, period: int = 100, energy_little_pj: float = 0.0,
               energy_big_pj: float = 0.0) -> DynamicResult:
    """Run Fig. 5 over the samples in the order given (shuffle them first for a random stream).

    Each period applies threshold max(theta, theta + delta) to its samples (so the big net's margin is
    known wherever either threshold escalates), accumulates PSI_approx for theta and theta + delta,
    then: PSI_theta > PSI_cand -> delta *= -0.5; PSI_theta < PSI_cand -> theta += delta, delta *= 1.2;
    equal -> theta += delta, delta *= -1.
    """
    if alpha <= 0 or beta <= 0:
        raise ThresholdError(f"alpha and beta must be > 0, got alpha={alpha}, beta={beta}")
    if period < 1:
        raise ThresholdError(f"sample period must be >= 1, got {period}")
    theta, delta = float(theta0), float(delta0)
    trajectory = [theta]
    answered_correct, escalated = 0, 0
    for start in range(0, len(margin_little), period):
        chunk = slice(start, start + period)
        m_little, m_big = margin_little[chunk], margin_big[chunk]
        accepted = m_little >= max(theta, theta + delta)
        answered_correct += int(np.where(accepted, correct_little[chunk], correct_big[chunk]).sum())
        escalated += int((~accepted).sum())
        psi_theta = psi_approx(m_little, m_big, theta, alpha, beta)
        psi_candidate = psi_approx(m_little, m_big, theta + delta, alpha, beta)
        if psi_theta > psi_candidate:
            delta *= -0.5
        elif psi_theta < psi_candidate:
            theta, delta = theta + delta, delta * 1.2
        else:
            theta, delta = theta + delta, -delta
        trajectory.append(theta)
    n = len(margin_little)
    return DynamicResult(np.array(trajectory), answered_correct / n, escalated / n,
                         energy_little_pj + energy_big_pj * escalated / n)


DEFAULT_ALPHAS = np.round(np.arange(1.0, 3.01, 0.05), 2)


def select_alpha(margin_little: np.ndarray, margin_big: np.ndarray, correct_little: np.ndarray,
                 correct_big: np.ndarray, max_loss_pct: float, alphas: np.ndarray = DEFAULT_ALPHAS,
                 **climb: float) -> tuple[float, DynamicResult]:
    """The paper's choice of alpha: the least big-net use whose accuracy loss on this stream meets the limit.

    Larger alpha favours the little net (lower threshold). If no alpha meets the limit, the most
    accurate one is returned.
    """
    if len(alphas) == 0 or np.any(np.asarray(alphas) <= 0):
        raise ThresholdError(f"alphas must be a non-empty list of values > 0, got {list(alphas)}")
    big_accuracy = float(np.mean(correct_big))
    runs = [(float(a), hill_climb(margin_little, margin_big, correct_little, correct_big, alpha=float(a), **climb))
            for a in alphas]
    feasible = [run for run in runs if 100.0 * (big_accuracy - run[1].accuracy) <= max_loss_pct + 1e-12]
    if feasible:
        return min(feasible, key=lambda run: (run[1].big_fraction, -run[1].accuracy))
    return max(runs, key=lambda run: (run[1].accuracy, -run[1].big_fraction))
