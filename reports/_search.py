"""How the search went: Optuna's parameter importances and the optimisation history with its hypervolume."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import optuna

from dse.core.study import is_feasible


@dataclass(frozen=True)
class History:
    """Per completed trial (in order): its calibration objective values, feasibility and the hypervolume of the
    feasible trials so far (minimisation, against `reference`: 1.1 x the worst feasible value of each objective)."""

    objectives: list[str]
    trials: list[int]
    values: list[list[float]]  # per objective, one value per trial
    feasible: list[bool]
    hypervolume: list[float]
    reference: list[float]


@dataclass(frozen=True)
class SearchData:
    """Parameter importances per objective (fANOVA over the parameters every trial draws alike) and the history."""

    importances: dict[str, dict[str, float]]
    history: History | None


def _history(trials: list[optuna.trial.FrozenTrial], names: list[str]) -> History | None:
    """The running hypervolume of the feasible trials, computed by moocore."""
    import moocore

    feasible = [is_feasible(t) for t in trials]
    points = np.array([t.values for t in trials], dtype=float)
    if not any(feasible) or len(names) < 2:
        return None
    worst, best = points[feasible].max(axis=0), points[feasible].min(axis=0)
    reference = worst + 0.1 * np.maximum(np.abs(worst), worst - best) + 1e-12
    hypervolume, kept = [], np.zeros((0, len(names)))
    for point, ok in zip(points, feasible):
        if ok:
            kept = np.vstack([kept, point])
        hypervolume.append(float(moocore.hypervolume(kept, ref=reference)) if len(kept) else 0.0)
    return History(names, [t.number for t in trials], points.T.tolist(), feasible, hypervolume, reference.tolist())


def _importances(study: optuna.Study, trials: list[optuna.trial.FrozenTrial],
                 names: list[str]) -> dict[str, dict[str, float]]:
    """fANOVA importances per objective over the completed trials (empty when too few or no shared parameter)."""
    first = trials[0].distributions
    shared = {name for name, dist in first.items() if all(t.distributions.get(name) == dist for t in trials)}
    if len(trials) < 4 or not shared:
        return {}
    importances = {}
    for i, name in enumerate(names):
        if len({t.values[i] for t in trials}) < 2:
            continue
        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=16, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fANOVA warns about single-valued parameters
            try:
                values = optuna.importance.get_param_importances(study, target=lambda t, i=i: t.values[i],
                                                                 params=sorted(shared), evaluator=evaluator)
            except RuntimeError:  # "zero total variance in all trees": the shared parameters explain nothing
                continue
        importances[name] = {param: float(value) for param, value in values.items()}
    return importances


def search_data(study: optuna.Study) -> SearchData:
    """Importances and history of a study's completed trials, objectives named as the study names them."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    if not trials:
        return SearchData({}, None)
    return SearchData(_importances(study, trials, names), _history(trials, names))
