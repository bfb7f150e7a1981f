"""How the search went: Optuna's parameter importances and the optimisation history with its hypervolume."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import optuna

from dse import is_feasible
from reports._anova import full_grid, main_effect_shares


# The study's objective columns (dse.core.objective.OBJECTIVE_COLUMNS) in SI: (factor to SI, SI unit, what it is)
OBJECTIVE_UNITS = {"energy_pj": (1e-12, "J", "calibration energy per inference"),
                   "accuracy_loss_pct": (1.0, "pp", "calibration accuracy loss"),
                   "latency_s": (1.0, "s", "calibration latency per inference"),
                   "storage_bytes": (1.0, "B", "storage")}


@dataclass(frozen=True)
class History:
    """Per completed trial (in order): its calibration objective values in SI units (`units`: J, pp, s, B), its
    feasibility and the hypervolume of the feasible trials so far, in the product of those units (minimisation,
    against `reference`: 10 % beyond the worst feasible value of each objective)."""

    objectives: list[str]  # the study's metric names
    trials: list[int]
    values: list[list[float]]  # per objective, one value per trial, in its unit
    feasible: list[bool]
    hypervolume: list[float]
    reference: list[float]
    units: list[str]
    labels: list[str]  # what each objective is, in words

    @property
    def hypervolume_unit(self) -> str:
        """The unit of the hypervolume: the product of the objectives' units, e.g. J·pp."""
        return "·".join(self.units)


@dataclass(frozen=True)
class SearchData:
    """Parameter importances per objective over the parameters every trial draws alike, how they were computed
    (`EXACT` or `FANOVA`), and the history."""

    importances: dict[str, dict[str, float]]
    history: History | None
    importance_method: str = ""


def _history(trials: list[optuna.trial.FrozenTrial], names: list[str]) -> History | None:
    """The running hypervolume of the feasible trials, computed by moocore."""
    import moocore

    feasible = [is_feasible(t) for t in trials]
    known = [OBJECTIVE_UNITS.get(name, (1.0, "", name)) for name in names]
    points = np.array([t.values for t in trials], dtype=float) * np.array([factor for factor, _, _ in known])
    if not any(feasible) or len(names) < 2:
        return None
    worst, best = points[feasible].max(axis=0), points[feasible].min(axis=0)
    reference = worst + 0.1 * np.maximum(np.abs(worst), worst - best) + 1e-12
    hypervolume, kept = [], np.zeros((0, len(names)))
    for point, ok in zip(points, feasible):
        if ok:
            kept = np.vstack([kept, point])
        hypervolume.append(float(moocore.hypervolume(kept, ref=reference)) if len(kept) else 0.0)
    return History(names, [t.number for t in trials], points.T.tolist(), feasible, hypervolume, reference.tolist(),
                   [unit for _, unit, _ in known], [label for _, _, label in known])


EXACT = "exact functional ANOVA over the full grid"  # SearchData.importance_method of an enumerated study
FANOVA = "fANOVA (Optuna, random forest)"


def _exact_importances(trials: list[optuna.trial.FrozenTrial], params: list[str],
                       objectives: list[tuple[int, str]]) -> dict[str, dict[str, float]] | None:
    """Importances from the exact decomposition on the full grid of `params` (None when the trials do not cover it):
    each parameter's main-effect variance over the sum of them, Optuna's normalisation."""
    importances = {}
    for i, name in objectives:
        grid = full_grid(trials, params, [t.values[i] for t in trials])
        if grid is None:
            return None
        shares = main_effect_shares(grid)
        if shares.sum() > 0:  # a constant objective, or one only interactions explain, has no main effects
            order = sorted(range(len(params)), key=lambda k: -shares[k])
            importances[name] = {params[k]: float(shares[k] / shares.sum()) for k in order}
    return importances


def _fanova_importances(study: optuna.Study, params: list[str],
                        objectives: list[tuple[int, str]]) -> dict[str, dict[str, float]]:
    """Optuna's fANOVA importances per objective (imports scikit-learn: only for studies that sampled their space)."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    importances = {}
    for i, name in objectives:
        evaluator = FanovaImportanceEvaluator(n_trees=16, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fANOVA warns about single-valued parameters
            try:
                values = get_param_importances(study, target=lambda t, i=i: t.values[i], params=params,
                                               evaluator=evaluator)
            except RuntimeError:  # "zero total variance in all trees": the shared parameters explain nothing
                continue
        importances[name] = {param: float(value) for param, value in values.items()}
    return importances


def _importances(study: optuna.Study, trials: list[optuna.trial.FrozenTrial],
                 names: list[str]) -> tuple[dict[str, dict[str, float]], str]:
    """Importances per objective over the parameters every completed trial draws alike, and the method: exact when
    the trials cover every combination of their values, else fANOVA (empty when too few trials or no such
    parameter; objectives with a single value are left out)."""
    first = trials[0].distributions
    shared = sorted(name for name, dist in first.items() if all(t.distributions.get(name) == dist for t in trials))
    varying = [(i, name) for i, name in enumerate(names) if len({t.values[i] for t in trials}) >= 2]
    if len(trials) < 4 or not shared or not varying:
        return {}, ""
    exact = _exact_importances(trials, shared, varying)
    if exact is not None:
        return exact, EXACT
    return _fanova_importances(study, shared, varying), FANOVA


def search_data(study: optuna.Study) -> SearchData:
    """Importances and history of a study's completed trials, objectives named as the study names them."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    if not trials:
        return SearchData({}, None)
    importances, method = _importances(study, trials, names)
    return SearchData(importances, _history(trials, names), method)
