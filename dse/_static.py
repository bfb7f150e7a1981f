"""Static threshold method of Park 2015 §4.2 (Eqs. 1-4), solved exactly on calibration margins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dse._sweep import accept_sweep


class ThresholdError(ValueError):
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
    if lam < 0:
        raise ThresholdError(f"lambda must be >= 0, got {lam}")
    margin_little = np.asarray(margin_little, dtype=np.float64)
    if margin_little.size == 0:
        raise ThresholdError("no calibration samples")
    delta = np.asarray(correct_big, dtype=np.float64) - np.asarray(correct_little, dtype=np.float64)
    loss_max, n = _loss_max(delta), len(delta)
    thresholds, gains, losses = accept_sweep(margin_little, delta)
    objective = gains / n - lam * losses / loss_max
    best = int(np.flatnonzero(objective == objective.max())[0])  # first = largest threshold
    return StaticSolution(float(thresholds[best]), float(objective[best]), int(gains[best]), float(losses[best]),
                          loss_max)


@dataclass(frozen=True)
class LambdaSweepPoint:
    """One lambda of the paper's sweep and where its threshold lands."""

    lam: float
    threshold: float
    big_fraction: float
    accuracy_loss_pct: float


def lambda_sweep(margin_little: np.ndarray, correct_little: np.ndarray, correct_big: np.ndarray,
                 lambdas: np.ndarray) -> list[LambdaSweepPoint]:
    """Eq. 4's threshold for every lambda, with the big-net fraction and accuracy loss it gives."""
    points = []
    for lam in lambdas:
        theta = static_threshold(margin_little, correct_little, correct_big, float(lam)).threshold
        accepted = margin_little >= theta
        accuracy = np.where(accepted, correct_little, correct_big).mean()
        points.append(LambdaSweepPoint(float(lam), theta, float(1 - accepted.mean()),
                                       100.0 * float(np.mean(correct_big) - accuracy)))
    return points


DEFAULT_LAMBDAS = np.r_[0.0, np.logspace(-2, 2, 81)]


def paper_static_choice(margin_little: np.ndarray, correct_little: np.ndarray, correct_big: np.ndarray,
                        max_loss_pct: float, lambdas: np.ndarray = DEFAULT_LAMBDAS) -> LambdaSweepPoint:
    """Park's procedure: sweep lambda, keep the least big-net use whose accuracy loss meets the target.

    With fixed little and big costs, least big-net use is least energy. If no lambda meets the
    target, the most accurate point is returned.
    """
    points = lambda_sweep(margin_little, correct_little, correct_big, lambdas)
    feasible = [p for p in points if p.accuracy_loss_pct <= max_loss_pct + 1e-12]
    if feasible:
        return min(feasible, key=lambda p: (p.big_fraction, p.accuracy_loss_pct))
    return min(points, key=lambda p: (p.accuracy_loss_pct, p.big_fraction))
