"""Exact functional ANOVA of a study whose trials cover the whole grid of its parameters (numpy only, no sklearn).

When every combination of the parameters' values was completed (an enumerated structure space), the functional
ANOVA decomposition under the uniform measure on that grid needs no model: a parameter's main effect is the mean over
the grid with that parameter fixed, less the grand mean, and its importance is the variance of that main effect.
Optuna's fANOVA estimates the same quantity through a random forest, which sampled studies still need.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution


def grid_values(distribution: BaseDistribution) -> list[float] | None:
    """The internal representations of every value a categorical or linear integer distribution can take (what
    structure spaces use, `Mechanism.shape`); None for any other distribution."""
    if isinstance(distribution, CategoricalDistribution):
        return [float(i) for i in range(len(distribution.choices))]
    if isinstance(distribution, IntDistribution) and not distribution.log:
        return [float(v) for v in range(distribution.low, distribution.high + 1, distribution.step)]
    return None


def main_effect_shares(grid: np.ndarray) -> np.ndarray:
    """Per axis of `grid` (one axis per parameter, one cell per combination), the variance of that parameter's main
    effect divided by the total variance of the grid (uniform weights); zeros when the grid is constant."""
    values = np.asarray(grid, dtype=np.float64)
    centred = values - values.mean()
    total = float(np.mean(centred ** 2))
    if total == 0.0:
        return np.zeros(values.ndim)
    axes = range(values.ndim)
    return np.array([np.mean(centred.mean(axis=tuple(a for a in axes if a != k)) ** 2) / total for k in axes])


def full_grid(trials: Sequence[optuna.trial.FrozenTrial], params: Sequence[str],
              targets: Sequence[float]) -> np.ndarray | None:
    """The mean target per combination of `params`' values, as a grid with one axis per parameter; None unless the
    trials cover every combination (parameters without a finite grid, or a missing combination)."""
    distributions = [trials[0].distributions[name] for name in params]
    values = [grid_values(d) for d in distributions]
    if any(v is None for v in values):
        return None
    shape = tuple(len(v) for v in values)  # type: ignore[arg-type]
    if np.prod(shape, dtype=np.float64) > len(trials):  # fewer trials than combinations
        return None
    index = [{v: i for i, v in enumerate(vs)} for vs in values]  # type: ignore[union-attr]
    total, count = np.zeros(shape), np.zeros(shape, dtype=np.int64)
    for trial, target in zip(trials, targets):
        cell = tuple(lookup[float(distribution.to_internal_repr(trial.params[name]))]
                     for name, distribution, lookup in zip(params, distributions, index))
        total[cell] += target
        count[cell] += 1
    if np.any(count == 0):
        return None
    return total / count
