"""Park 2015 (big/little DNN): the static threshold method of §4.2 (Eqs. 1-4), solved exactly on calibration
margins, and the dynamic hill-climbing adjustment of §4.3 (Fig. 5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from costmodel import UserError
from dse.core._exact import allowed_extra_errors
from dse.core.sweep import accept_sweep


class ThresholdError(UserError):
    """Bad input to a threshold method (negative lambda, non-positive alpha, empty data)."""


@dataclass(frozen=True)
class StaticSolution:
    """The arg-max of Eq. 4 and its terms."""

    threshold: float
    objective: float
    gain: int  # Eq. 1: samples the little net answers
    loss: float  # Eq. 2
    loss_max: float  # Eq. 3


def static_objective(margin_little: np.ndarray, correct_little: np.ndarray, correct_big: np.ndarray,
                     lam: float, thresholds: np.ndarray) -> np.ndarray:
    """Eq. 4 evaluated at each threshold (brute force; the reference for `static_threshold`)."""
    accepted = margin_little[None, :] >= np.asarray(thresholds)[:, None]
    delta = correct_big.astype(np.float64) - correct_little.astype(np.float64)
    loss_max = _loss_max(delta)
    return accepted.mean(axis=1) - lam * (accepted @ delta) / loss_max


def _loss_max(delta: np.ndarray) -> float:
    """Eq. 3; when the little net is not worse overall (LM <= 0) the loss is normalised by N instead."""
    loss_max = float(delta.sum())
    return loss_max if loss_max > 0 else float(len(delta))


def static_threshold(margin_little: np.ndarray, correct_little: np.ndarray, correct_big: np.ndarray,
                     lam: float) -> StaticSolution:
    """Exact arg-max over theta of Gain/N - lambda * Loss/LM (Eq. 4) by one sweep over sorted margins.

    P(correct) per sample is the cached correctness (0 or 1): the paper's PDF estimate of
    P(correct | sample) evaluated on labelled calibration samples reduces to exactly that.
    The objective only changes at observed margins, so the candidates are every distinct margin
    (accept all samples with margin >= it) and +inf (accept none). Ties go to the larger threshold.
    """
    return _StaticSweep(margin_little, correct_little, correct_big).solve(lam)


class _StaticSweep:
    """The sorted-margin sweep of Eq. 4's terms, done once and solved for any number of lambdas."""

    def __init__(self, margin_little: np.ndarray, correct_little: np.ndarray, correct_big: np.ndarray) -> None:
        margin_little = np.asarray(margin_little, dtype=np.float64)
        if margin_little.size == 0:
            raise ThresholdError("no calibration samples")
        delta = np.asarray(correct_big, dtype=np.float64) - np.asarray(correct_little, dtype=np.float64)
        self.loss_max, self.n = _loss_max(delta), len(delta)
        self.thresholds, self.gains, self.losses = accept_sweep(margin_little, delta)

    def solve(self, lam: float) -> StaticSolution:
        """The arg-max of Eq. 4 for one lambda (ties: the larger threshold)."""
        if lam < 0:
            raise ThresholdError(f"lambda must be >= 0, got {lam}")
        objective = self.gains / self.n - lam * self.losses / self.loss_max
        best = int(np.flatnonzero(objective == objective.max())[0])  # first = largest threshold
        return StaticSolution(float(self.thresholds[best]), float(objective[best]), int(self.gains[best]),
                              float(self.losses[best]), self.loss_max)


@dataclass(frozen=True)
class LambdaSweepPoint:
    """One lambda of the paper's sweep and where its threshold lands."""

    lam: float
    threshold: float
    big_fraction: float
    accuracy_loss_pct: float
    extra_errors: int = 0  # errors beyond the big net's (what the loss target is compared on, exactly)
    samples: int = 1


def lambda_sweep(margin_little: np.ndarray, correct_little: np.ndarray, correct_big: np.ndarray,
                 lambdas: np.ndarray) -> list[LambdaSweepPoint]:
    """Eq. 4's threshold for every lambda, with the big-net fraction and accuracy loss it gives."""
    sweep = _StaticSweep(margin_little, correct_little, correct_big)
    points = []
    for lam in lambdas:
        theta = sweep.solve(float(lam)).threshold
        accepted = margin_little >= theta
        right = np.where(accepted, correct_little, correct_big)
        extra = int(np.sum(correct_big)) - int(np.sum(right))
        points.append(LambdaSweepPoint(float(lam), theta, float(1 - accepted.mean()),
                                       100.0 * float(np.mean(correct_big) - right.mean()), extra, len(right)))
    return points


DEFAULT_LAMBDAS = np.r_[0.0, np.logspace(-2, 2, 81)]


def paper_static_choice(margin_little: np.ndarray, correct_little: np.ndarray, correct_big: np.ndarray,
                        max_loss_pct: float, lambdas: np.ndarray = DEFAULT_LAMBDAS) -> LambdaSweepPoint:
    """Park's procedure: sweep lambda, keep the least big-net use whose accuracy loss meets the target.

    With fixed little and big costs, least big-net use is least energy. If no lambda meets the
    target, the most accurate point is returned.
    """
    points = lambda_sweep(margin_little, correct_little, correct_big, lambdas)
    feasible = [p for p in points if p.extra_errors <= allowed_extra_errors(max_loss_pct, p.samples)]
    if feasible:
        return min(feasible, key=lambda p: (p.big_fraction, p.accuracy_loss_pct))
    return min(points, key=lambda p: (p.accuracy_loss_pct, p.big_fraction))


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
    n, big_right = len(correct_big), int(np.sum(correct_big))
    runs = [(float(a), hill_climb(margin_little, margin_big, correct_little, correct_big, alpha=float(a), **climb))
            for a in alphas]
    allowed = allowed_extra_errors(max_loss_pct, n)  # compared exactly: a run's accuracy is a count over n samples
    feasible = [run for run in runs if big_right - round(run[1].accuracy * n) <= allowed]
    if feasible:
        return min(feasible, key=lambda run: (run[1].big_fraction, -run[1].accuracy))
    return max(runs, key=lambda run: (run[1].accuracy, -run[1].big_fraction))
