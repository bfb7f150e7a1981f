"""Certifying the search's front on the calibration rows kept aside, once per study."""

from __future__ import annotations

import hashlib

import numpy as np
import optuna

from dse.core._risk import fixed_sequence, loss_upper_bound
from dse.core.problem import CERTIFY, CascadeProblem
from dse.core.readback import study_results, trial_results
from dse.core.results import Certificate, CertifiedPoint, headline
from dse.core.space import CascadeSpace, replay_structure
from dse.core.spec import StudySpec
from dse.core.study_attrs import CERTIFICATE, RECOMMENDED, recorded_points, report_data, store_report_data


def certify_once(study: optuna.Study, problem: CascadeProblem, spec: StudySpec) -> Certificate | None:
    """The study's certificate: the stored one if any (its rows have been looked at: certifying a later front on
    them again would be a repeated look), else the front certified now and stored with the rows it used (None: no
    guarantee, or no completed trial yet)."""
    if spec.search.guarantee is None:
        return None
    stored = report_data(study).get(CERTIFICATE)
    if stored is not None:
        return Certificate.from_json(stored)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    certificate = certify(study, problem, spec)
    store_report_data(study, CERTIFICATE, certificate.to_json())
    choice = headline(study_results(study)).to_json()
    study.set_user_attr(RECOMMENDED, {key: choice[key] for key in ("certified", "trial", "point", "cascade",
                                                                   "thresholds", "test_accuracy_loss_pct")})
    return certificate


def certify(study: optuna.Study, problem: CascadeProblem, spec: StudySpec) -> Certificate:
    """Certify the search's front on the calibration rows kept aside (Learn then Test, `dse.risk`).

    The structures on the union front and each one's recorded points (its threshold front and the safer candidates
    beyond it), ordered from safe (most energy on the search rows) to aggressive, are fixed by the search half
    before the kept-aside rows are read; each structure is tested by fixed-sequence testing at delta / K (Bonferroni
    over its K structures), so with probability >= 1 - delta every returned point has risk <= alpha. Holds the most
    aggressive certified point of each structure that has one.
    """
    guarantee = spec.search.guarantee
    assert guarantee is not None and guarantee.alpha_pct is not None
    space = CascadeSpace(problem, spec)
    trials = {t.number: t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
    numbers = sorted({p.number for p in trial_results(study) if p.pareto})
    n, delta = problem.margin[CERTIFY].shape[1], guarantee.delta / max(len(numbers), 1)
    out = []
    for number in numbers:
        trial = trials[number]
        chain = space.chain(replay_structure(space, trial.params))
        recorded = recorded_points(trial)
        order = sorted(range(len(recorded)), key=lambda i: -recorded[i]["calib_energy_j"])
        points = [recorded[i] for i in order]
        thresholds = np.array([p["thresholds"] for p in points], dtype=np.float64).reshape(len(points), -1)
        values = problem.evaluator.evaluate(chain, thresholds, CERTIFY)
        count = fixed_sequence(values.worse, values.better, n, guarantee.alpha_pct, delta)
        if count == 0:
            continue
        worse, better, chosen = int(values.worse[count - 1]), int(values.better[count - 1]), thresholds[count - 1]
        out.append(CertifiedPoint(number, points[0]["cascade"], tuple(float(t) for t in chosen),
                                  guarantee.alpha_pct, delta, n, 100.0 * (worse - better) / n,
                                  100.0 * loss_upper_bound(worse, better, n, delta),
                                  float(values.energy_j[count - 1]),
                                  problem.evaluator.point_metrics(chain, chosen[None], "test")[0],
                                  order[count - 1], float(values.energy_saving_pct[count - 1])))
    source, rows = problem.rows[CERTIFY]
    digest = hashlib.sha256(f"{source}:{','.join(map(str, rows.tolist()))}".encode()).hexdigest()
    return Certificate(guarantee.alpha_pct, guarantee.delta, n, digest, len(trials), tuple(numbers), tuple(out))
