"""The Optuna study of a spec: space, objective, baselines, resume, and the typed results read back from it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass

import numpy as np
import optuna

from dse.core.mechanism import registry
from dse.core.problem import CascadeProblem
from dse.core.results import PJ, Baseline, MarginCurve, Metrics, Panel, StudyResults, TrialResult
from dse.core.smrc import smrc
from dse.core.space import CascadeSpace
from dse.core.spec import SpecError, StudySpec

OBJECTIVE_COLUMNS = {"energy": "energy_pj", "accuracy_loss": "accuracy_loss_pct", "latency": "latency_s",
                     "storage": "storage_bytes"}
SPLITS = ("calib", "test")
RECORD = "record"  # the trial user attribute holding the cascade, its thresholds and all calib/test metrics


def spec_digest(spec: StudySpec) -> str:
    """Fingerprint of what defines the study's space and values (not the trial budget)."""
    return hashlib.sha256(json.dumps(digest_payload(spec), sort_keys=True).encode()).hexdigest()[:16]


def digest_payload(spec: StudySpec) -> dict:
    """What `spec_digest` hashes: every section, less the trial budget, off sections of newer mechanisms and default
    fields added after the fingerprint was fixed."""
    off = {name for name, mechanism in registry().items()
           if not mechanism.digest_when_off and name not in spec.enabled()}
    payload = {name: dataclasses.asdict(section) for name, section in spec.sections().items() if name not in off}
    payload["search"] = {k: v for k, v in payload["search"].items() if k not in ("n_trials", "seed")}
    if spec.search.criteria == ("margin",):  # the default, which studies made before criteria existed had
        del payload["search"]["criteria"]
    return payload


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    """The sampler the spec names, seeded."""
    seed = spec.search.seed
    if spec.search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if spec.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional spaces need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=20)


def open_study(spec: StudySpec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the spec's study, or load it to resume; refuses a study made from a different spec."""
    directions = ["minimize"] * len(spec.search.objectives)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=spec.name, directions=directions,
                                sampler=make_sampler(spec), load_if_exists=True)
    digest = study.user_attrs.get("spec_digest")
    if digest is None:
        study.set_user_attr("spec_digest", spec_digest(spec))
        study.set_user_attr("objectives", list(spec.search.objectives))
    elif digest != spec_digest(spec):
        raise SpecError(f"{spec.source}: the study '{spec.name}' in this storage was made from a different spec; "
                        f"use another --out/--storage or restore the spec")
    return study


def baselines(problem: CascadeProblem, spec: StudySpec) -> list[Baseline]:
    """Every variant alone (the big net, and each other variant as the mechanism that brought it names it), then
    the mechanisms' own reference points (e.g. a paper's method at the loss limit)."""
    enabled = [(registry()[name], spec.section(name)) for name in spec.enabled()]
    rows = []
    for index, variant in enumerate(problem.variants):
        kinds = [m.baseline_kind(spec, config, variant) for m, config in enabled]
        kind = "big only" if index == problem.big else next((k for k in kinds if k), "single stage")
        rows.append(Baseline(kind, variant.name, problem.metrics([index], np.zeros(0), "calib"),
                             problem.metrics([index], np.zeros(0), "test")))
    for mechanism, config in enabled:
        rows += mechanism.baselines(problem, spec, config)
    return rows


def margin_curves(problem: CascadeProblem, split: str = "test", points: int = 101) -> list[MarginCurve]:
    """The score-margin classifier of every variant on `split`: AUC, a down-sampled ROC and margin histograms."""
    curves = []
    for index, name in enumerate(problem.names):
        result = smrc(problem.margin[split][index], problem.correct[split][index])
        keep = np.unique(np.linspace(0, len(result.false_positive_rate) - 1, points).astype(int))
        curves.append(MarginCurve(name, result.auc, result.false_positive_rate[keep].tolist(),
                                  result.true_positive_rate[keep].tolist(), result.bin_edges.tolist(),
                                  result.hist_correct.tolist(), result.hist_wrong.tolist()))
    return curves


def panels(problem: CascadeProblem, spec: StudySpec) -> list[Panel]:
    """Every report panel of the spec's mechanisms."""
    return [panel for name in spec.enabled() for panel in registry()[name].panels(problem, spec, spec.section(name))]


@dataclass
class SearchTiming:
    """Where search time went: Optuna (sampler + storage), scoring variants first drawn by a trial, evaluation."""

    trials: int
    wall_s: float
    scoring_s: float
    evaluate_s: float

    def per_trial_ms(self, seconds: float) -> float:
        """`seconds` spread over the trials, in ms."""
        return 1000.0 * seconds / max(self.trials, 1)

    @property
    def overhead_ms_per_trial(self) -> float:
        """Optuna bookkeeping (sampler + storage) per trial, in ms."""
        return self.per_trial_ms(self.wall_s - self.scoring_s - self.evaluate_s)


class CascadeObjective:
    """Optuna objective: a point from the space, values on the calibration split, all metrics as one user attr."""

    def __init__(self, problem: CascadeProblem, spec: StudySpec) -> None:
        self.problem, self.spec = problem, spec
        self.space = CascadeSpace(problem, spec)
        self.evaluate_s = 0.0

    def __call__(self, trial: optuna.Trial) -> list[float]:
        point = self.space.suggest(trial)
        start = time.perf_counter()
        metrics = {split: self.problem.metrics(point.stages, point.thresholds, split, point.accelerator, point.reuse,
                                               point.criterion) for split in SPLITS}
        self.evaluate_s += time.perf_counter() - start
        trial.set_user_attr(RECORD, {"cascade": point.cascade(self.problem.names),  # one storage write, not ~20
                                     "thresholds": [float(t) for t in point.thresholds],
                                     **metrics["calib"].flat("calib"), **metrics["test"].flat("test")})
        if self.spec.search.max_accuracy_loss_pct is not None:
            trial.set_constraint("accuracy_loss", constraint_value(metrics["calib"], self.spec))
        values = {"energy": metrics["calib"].energy_j / PJ, "accuracy_loss": metrics["calib"].accuracy_loss_pct,
                  "latency": metrics["calib"].latency_s, "storage": metrics["calib"].storage_bytes}
        return [float(values[name]) for name in self.spec.search.objectives]


def constraint_value(calib: Metrics, spec: StudySpec) -> float:
    """Constraint value (<= 0: feasible) of the loss limit on the calibration split.

    Without a confidence margin the comparison is exact, on integer extra errors: e extra errors in n samples meet
    a limit of L % when 100 e <= L n, with L the decimal it is written as (10 extra in 1,000 meets 1.0 %). With
    `loss_confidence_z`, the loss plus z standard errors of the paired difference is compared in floats.
    """
    from fractions import Fraction

    limit = spec.search.max_accuracy_loss_pct
    assert limit is not None
    z = spec.search.loss_confidence_z
    if z == 0:
        return float((100 * calib.extra_errors - Fraction(str(limit)) * calib.samples) / calib.samples)
    return float(calib.accuracy_loss_pct + z * calib.accuracy_loss_se_pct) - limit


def run_search(study: optuna.Study, problem: CascadeProblem, spec: StudySpec, n_trials: int,
               progress: bool = True) -> SearchTiming:
    """Record baselines, margin curves and panels on the study, then add `n_trials` trials to it."""
    study.set_user_attr("baselines", [b.to_json() for b in baselines(problem, spec)])
    study.set_user_attr("smrc", [dataclasses.asdict(c) for c in margin_curves(problem)])
    study.set_user_attr("panels", [p.to_json() for p in panels(problem, spec)])
    study.set_user_attr("big", problem.names[problem.big])
    study.set_user_attr("max_accuracy_loss_pct", spec.search.max_accuracy_loss_pct)
    objective = CascadeObjective(problem, spec)
    scoring_before = problem.scoring_s
    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, show_progress_bar=progress and n_trials > 0)
    return SearchTiming(n_trials, time.perf_counter() - start, problem.scoring_s - scoring_before, objective.evaluate_s)


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """True when every constraint value is <= 0 (Optuna's convention)."""
    return all(value <= 0 for value in (trial.constraints or {}).values())


def trial_results(study: optuna.Study) -> list[TrialResult]:
    """Every completed trial as a typed result, in trial order.

    Trials whose calibration objectives tie with an earlier Pareto trial (e.g. two thresholds between the same pair
    of margins) are not flagged Pareto again, so the front lists each distinct point once.
    """
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    seen: set[tuple[float, ...]] = set()
    pareto: set[int] = set()
    for trial in sorted(study.best_trials, key=lambda t: t.number):
        if tuple(trial.values) not in seen:
            seen.add(tuple(trial.values))
            pareto.add(trial.number)
    results = []
    for trial in trials:
        record = trial.user_attrs.get(RECORD)
        if record is None:
            continue
        results.append(TrialResult(trial.number, record["cascade"], tuple(record["thresholds"]), dict(trial.params),
                                   Metrics.from_row(record, "calib"), Metrics.from_row(record, "test"),
                                   is_feasible(trial), trial.number in pareto))
    return results


def study_results(study: optuna.Study) -> StudyResults:
    """The typed results of a study: what the report, the exports and `dse pareto` read."""
    attrs = study.user_attrs
    return StudyResults(study.study_name, attrs.get("big", "?"), attrs.get("max_accuracy_loss_pct"),
                        trial_results(study), [Baseline.from_json(b) for b in attrs.get("baselines", [])],
                        [MarginCurve(**c) for c in attrs.get("smrc", [])], [Panel(**p) for p in attrs.get("panels", [])])


def search_study(problem: CascadeProblem, spec: StudySpec, n_trials: int) -> optuna.Study:
    """An in-memory study of `n_trials` on `problem` (for protocols that repeat the search many times)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize"] * len(spec.search.objectives), sampler=make_sampler(spec))
    study.optimize(CascadeObjective(problem, spec), n_trials=n_trials)
    return study


def best_feasible(study: optuna.Study, problem: CascadeProblem) -> tuple[list[int], float]:
    """The least-calibration-energy feasible two-stage trial as (stages, its threshold)."""
    feasible = [t for t in trial_results(study) if t.feasible]
    if not feasible:
        raise SpecError(f"study '{study.study_name}': no feasible trial")
    best = min(feasible, key=lambda t: (t.calib.energy_j, t.calib.accuracy_loss_pct))
    return [problem.index(name) for name in best.cascade.split(" > ")], float(best.thresholds[0])
