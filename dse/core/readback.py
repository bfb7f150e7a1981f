"""Reading a study's results back: every recorded point as a typed result, the union front, the study's results."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import optuna

from dse.core.fingerprint import flat_keys
from dse.core.gc_pause import gc_paused
from dse.core.objective import loss_excess, objective_values
from dse.core.problem import CascadeProblem
from dse.core.results import (MAPPINGS, Baseline, Certificate, LayerMapping, MarginCurve, Metrics, Panel,
                              StudyResults, TrialResult, mark)
from dse.core.spec import SpecError
from dse.core.study_attrs import SPEC_ATTR, SPEC_NAME_ATTR, SPEC_SOURCE_ATTR, recorded_points, report_data


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """True when every constraint value is <= 0 (Optuna's convention)."""
    return all(value <= 0 for value in (trial.constraints or {}).values())


@gc_paused()
def trial_results(study: optuna.Study) -> list[TrialResult]:
    """Every recorded point of every completed trial as a typed result, in (trial, point) order, with the union
    front flagged: the feasible points no other feasible point dominates on the calibration objectives.

    A point whose objective values tie with an earlier front point (e.g. the same cascade in two trials) is not
    flagged again, so the front lists each distinct point once: the one of the fewest stages, then the first run.
    """
    spec_objectives = study.user_attrs.get("objectives", ["energy", "accuracy_loss"])
    limit, z = study.user_attrs.get("max_accuracy_loss_pct"), study.user_attrs.get("loss_confidence_z", 0.0)
    points = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        mappings = LayerMapping.all_from_json(trial.system_attrs.get(MAPPINGS))
        for index, point in enumerate(recorded_points(trial)):
            calib = Metrics.from_row(point, "calib")
            feasible = limit is None or loss_excess(calib, limit, z) <= 0
            points.append(TrialResult.from_user_attrs(trial.number, trial.params, point, feasible, False, index,
                                                      mappings))
    values = np.array([objective_values(p.calib, spec_objectives) for p in points]).reshape(len(points), len(spec_objectives))
    # sorted by the first objective (a point is dominated only by points before it); of equal points the one of the
    # fewest stages (one net alone before the same net followed by a stage never reached), then the first run
    rows = values.tolist()
    order = sorted(range(len(points)), key=lambda i: (tuple(rows[i]), len(points[i].stages)))
    flagged = _front(values, order, [p.feasible for p in points])
    return [dataclasses.replace(p, pareto=True) if i in flagged else p for i, p in enumerate(points)]  # made unflagged


def _front(values: np.ndarray, order: list[int], feasible: list[bool]) -> set[int]:
    """The rows, visited in `order` (sorted by their values), that are feasible and not weakly dominated by (nor equal
    to) a row flagged before: with two finite objectives, whose second value is below every flagged row's (each
    earlier row is no worse on the first), else by comparing with every flagged row."""
    flagged: set[int] = set()
    if values.shape[1] == 2 and np.isfinite(values).all():
        least = math.inf
        for i, second in zip(order, values[order, 1].tolist()):
            if feasible[i] and second < least:
                flagged.add(i)
                least = second
        return flagged
    seen: set[tuple[float, ...]] = set()
    front = np.empty_like(values)  # the front's values so far, in its first rows
    for i in order:
        key = tuple(values[i])
        if not feasible[i] or key in seen or np.all(front[:len(flagged)] <= values[i], axis=1).any():
            continue
        front[len(flagged)] = values[i]
        flagged.add(i)
        seen.add(key)
    return flagged


def study_results(study: optuna.Study) -> StudyResults:
    """The typed results of a study: what the report, the exports and `dse pareto` read."""
    attrs = study.user_attrs
    data = report_data(study)
    guarantee = attrs.get("loss_guarantee")
    certificate = Certificate.from_json(data["certificate"]) if "certificate" in data else None
    return mark(StudyResults(
        study.study_name, attrs.get("big", "?"), attrs.get("max_accuracy_loss_pct"), trial_results(study),
        [Baseline.from_json(b) for b in data.get("baselines", [])], [MarginCurve(**c) for c in data.get("smrc", [])],
        [Panel(**p) for p in data.get("panels", [])], list(certificate.points) if certificate else [],
        dict(attrs.get("settings", {})),
        None if guarantee is None else (guarantee["alpha_pct"], guarantee["delta"]), certificate,
        study_spec(study)))


def study_spec(study: optuna.Study) -> dict[str, Any]:
    """The spec a study was made from, as the report shows it: its name, file and fingerprint, then every key."""
    attrs = study.user_attrs
    return {"spec name": attrs.get(SPEC_NAME_ATTR, study.study_name), "spec file": attrs.get(SPEC_SOURCE_ATTR, "?"),
            "spec fingerprint": attrs.get("spec_digest", "?"), **flat_keys(report_data(study).get(SPEC_ATTR, {}))}


def best_feasible(study: optuna.Study, problem: CascadeProblem) -> tuple[list[int], float]:
    """The least-calibration-energy feasible two-stage point as (stages, its threshold)."""
    feasible = [t for t in trial_results(study) if t.feasible]
    if not feasible:
        raise SpecError(f"study '{study.study_name}': no feasible trial")
    best = min(feasible, key=lambda t: (t.calib.energy_j, t.calib.accuracy_loss_pct))
    return [problem.index(name) for name in best.cascade.split(" > ")], float(best.thresholds[0])
