"""The Optuna study of a spec: space, objective, baselines, resume, and the typed results read back from it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import optuna

from dse.core.problem import CERTIFY, CascadeProblem
from dse.core.results import (MAPPINGS, PJ, Baseline, Certificate, CertifiedPoint, LayerMapping, MarginCurve, Metrics,
                              Panel, StudyResults, TrialResult, allowed_errors, headline, mark)
from dse.core.smrc import smrc
from dse.core._risk import fixed_sequence, loss_upper_bound
from dse.core.space import CascadeSpace, enumerate_structures, replay_structure
from dse.core.spec import SpecError, StudySpec
from dse.core.storage import constraint_attr, open_storage, set_trial_attrs, study_exists
from dse.core.enumeration import StructureQueue, run_queue
from dse.core.workers import StopRequest, run_trials
from nets import file_digest

OBJECTIVE_COLUMNS = {"energy": "energy_pj", "accuracy_loss": "accuracy_loss_pct", "latency": "latency_s",
                     "storage": "storage_bytes"}
SPLITS = ("calib", "test")
RECORD = "front"  # the trial user attribute holding every recorded point of the trial's threshold front (as JSON)
REPORT_PREFIX = "dse:"  # study system attributes holding the report's baselines, margin curves and panels
DASHBOARD_CONSTRAINTS = "constraints"  # the system attribute optuna-dashboard 0.21 reads constraints from
CERTIFICATE = f"{REPORT_PREFIX}certificate"  # the study system attribute holding the loss guarantee's certificate
RECOMMENDED = "recommended"  # the study user attribute naming the recommended point (what optuna-dashboard lists)


def spec_digest(spec: StudySpec) -> str:
    """Fingerprint of what defines the study's space and values (not the trial budget)."""
    return hashlib.sha256(json.dumps(digest_payload(spec), sort_keys=True).encode()).hexdigest()[:16]


def digest_payload(spec: StudySpec) -> dict:
    """What `spec_digest` hashes: every section, less the trial budget, off sections of newer mechanisms and default
    fields added after the fingerprint was fixed."""
    off = {name for name, bound in spec.mechanisms.items()
           if not bound.mechanism.digest_when_off and name not in spec.enabled()}
    payload = {name: dataclasses.asdict(section) for name, section in spec.sections().items() if name not in off}
    payload["search"] = {k: v for k, v in payload["search"].items() if k not in ("n_trials", "seed")}
    if spec.models:  # by content: the same files elsewhere resume the study, one changed byte does not
        payload["models"] = {name: model.fingerprint() for name, model in spec.models.items()}
    if spec.accelerator.technology:  # so is a technology file (its path is already in the accelerator section)
        try:
            payload["technology_sha256"] = file_digest(spec.accelerator.technology)
        except OSError as exc:
            raise SpecError(f"{spec.source}: accelerator.technology: cannot read {spec.accelerator.technology} "
                            f"({exc.strerror})") from None
    if spec.search.criteria == ("margin",):  # the default, which studies made before criteria existed had
        del payload["search"]["criteria"]
    for name, bound in spec.mechanisms.items():  # fields added later, at the defaults older studies had
        for key, default in bound.mechanism.later_fields.items():
            if name in payload and payload[name].get(key) == default:
                del payload[name][key]
    return payload


def sampler_seed(seed: int, stream: tuple[int, ...] = ()) -> int:
    """The seed of one sampling stream: the spec's seed mixed with e.g. (worker id, trials already in the study),
    so that no two workers and no restart draw the same points; no stream: the spec's seed itself."""
    if not stream:
        return seed
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


def make_sampler(spec: StudySpec, stream: tuple[int, ...] = ()) -> optuna.samplers.BaseSampler:
    """The sampler the spec names, seeded for `stream` (see `sampler_seed`)."""
    seed = sampler_seed(spec.search.seed, stream)
    if spec.search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if spec.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # `group` is marked experimental; it is what conditional spaces need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=20)


SPEC_ATTR = "spec"  # report data (a study system attribute): the digest payload of the spec the study was made from
SPEC_NAME_ATTR = "spec_name"  # the name of that spec (a study started with --new is named <spec name>-<n>)
SPEC_SOURCE_ATTR = "spec_source"


class ChangedSpec(SpecError):
    """A study of the spec's name holds another spec; the message names every changed key with both values."""


def flat_keys(payload: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested spec payload as dotted keys (e.g. 'search.max_accuracy_loss_pct'), values as JSON reads them back."""
    out: dict[str, Any] = {}
    for key, value in json.loads(json.dumps(payload)).items():
        if isinstance(value, dict) and value:
            out |= flat_keys(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every key whose value differs between two spec payloads ('absent' on the missing side)."""
    before, after = flat_keys(old), flat_keys(new)
    def show(values: dict[str, Any], key: str) -> str:
        return json.dumps(values[key]) if key in values else "absent"
    return [f"{key}: {show(before, key)} -> {show(after, key)}" for key in sorted(before.keys() | after.keys())
            if before.get(key, ...) != after.get(key, ...)]


def check_digest(study: optuna.Study, spec: StudySpec) -> None:
    """Refuse a study made from a different spec, naming every changed key with its old and new values."""
    digest = study.user_attrs.get("spec_digest")
    if digest is None or digest == spec_digest(spec):
        return
    recorded = report_data(study).get(SPEC_ATTR)
    changes = ("; ".join(spec_changes(recorded, digest_payload(spec))) if recorded is not None else
               "the study predates recorded specs, so the changed keys cannot be named")
    raise ChangedSpec(f"{spec.source}: the study '{study.study_name}' in this storage was made from a different spec "
                      f"({changes}); restore the spec, use another --out/--storage, or pass --new to start a new "
                      f"study from this spec beside it")


def _studies_of(storage: optuna.storages.BaseStorage, spec: StudySpec) -> tuple[list[str], list[optuna.Study]]:
    """Every study name in `storage`, and the studies that may hold `spec`'s: named after it, or started from a spec
    of its name with --new (<name>-<n>)."""
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    mine = [n for n in names if n == spec.name or (n.startswith(f"{spec.name}-") and n[len(spec.name) + 1:].isdigit())]
    studies = [optuna.load_study(study_name=n, storage=storage) for n in mine]
    return names, [s for s in studies if s.study_name == spec.name or s.user_attrs.get(SPEC_NAME_ATTR) == spec.name]


def study_name_for(spec: StudySpec, storage: optuna.storages.BaseStorage, new: bool = False) -> str:
    """The study a run of `spec` uses in `storage`: the one made from this spec (by its digest), else the spec's name
    if free, else (with `new`) the first free <name>-<n>, n >= 2; refuses a changed spec otherwise (`check_digest`)."""
    names, studies = _studies_of(storage, spec)
    digest = spec_digest(spec)
    for study in studies:
        if study.user_attrs.get("spec_digest") == digest:
            return study.study_name
    named = next((s for s in studies if s.study_name == spec.name), None)
    if named is None or named.user_attrs.get("spec_digest") is None:  # free, or interrupted as it was being made
        return spec.name
    if not new:
        check_digest(named, spec)
    return next(f"{spec.name}-{n}" for n in range(2, len(names) + 3) if f"{spec.name}-{n}" not in names)


def check_resumable(spec: StudySpec, url: str, new: bool = False) -> str:
    """Before any work, read-only: the name of the study a run of `spec` uses in `url` (`study_name_for`)."""
    if not study_exists(url, spec.name):
        return spec.name
    return study_name_for(spec, open_storage(url, None, create=False), new)


def open_study(spec: StudySpec, storage: optuna.storages.BaseStorage, worker: int = 0,
               study_name: str | None = None) -> optuna.Study:
    """Create the spec's study (named `study_name`, default the spec's name), or load it to resume; refuses a study
    made from a different spec. The sampler's stream is (worker, trials already in the study): every worker and every
    restart samples its own points."""
    directions = ["minimize"] * len(spec.search.objectives)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name or spec.name, directions=directions,
                                sampler=make_sampler(spec), load_if_exists=True)
    check_digest(study, spec)
    if study.user_attrs.get("spec_digest") is None:
        study._storage.set_study_system_attr(study._study_id, f"{REPORT_PREFIX}{SPEC_ATTR}", digest_payload(spec))
        for key, value in ((SPEC_NAME_ATTR, spec.name), (SPEC_SOURCE_ATTR, spec.source),
                           ("objectives", list(spec.search.objectives))):
            study.set_user_attr(key, value)
        with warnings.catch_warnings():  # experimental since 3.2, and what the dashboard and exports read
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_COLUMNS[name] for name in spec.search.objectives])
        study.set_user_attr("spec_digest", spec_digest(spec))  # last: a study with a digest has all of the above
    study.sampler = make_sampler(spec, (worker, len(study.get_trials(deepcopy=False))))
    return study


def baselines(problem: CascadeProblem, spec: StudySpec) -> list[Baseline]:
    """Every variant alone (the big net, and each other variant as the mechanism that brought it names it), then
    the mechanisms' own reference points (e.g. a paper's method at the loss limit)."""
    enabled = [(bound.mechanism, bound.section) for bound in spec.active()]
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
    return [panel for bound in spec.active() for panel in bound.mechanism.panels(problem, spec, bound.section)]


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


EXACT_STAGES = 3  # threshold fronts of up to this many stages are solved exactly (`dse.core._exact.front`)
EXTRA_INFEASIBLE_POINTS = 8  # a trial keeps its front's feasible points and this many beyond the loss limit


def objective_values(metrics: Metrics, objectives: tuple[str, ...] | list[str]) -> list[float]:
    """The values Optuna minimises for one point, in the order of the spec's objectives (energy in pJ)."""
    values = {"energy": metrics.energy_j / PJ, "accuracy_loss": metrics.accuracy_loss_pct,
              "latency": metrics.latency_s, "storage": metrics.storage_bytes}
    return [float(values[name]) for name in objectives]


class CascadeObjective:
    """Optuna objective: one cascade structure per trial, its threshold front solved on the calibration split (exact up
    to 3 stages, approximate from 4: `dse.exact.coordinate_front`).

    Every front point's calibration and test metrics are stored in one user attribute (one storage write); the
    trial's values are those of its least-energy feasible point (the point a user would take from this structure),
    so that the sampler learns which structures pay. With `thresholds = "sampled"` a trial is one point whose
    thresholds Optuna draws.
    """

    def __init__(self, problem: CascadeProblem, spec: StudySpec) -> None:
        self.problem, self.spec = problem, spec
        self.space = CascadeSpace(problem, spec)
        self.evaluate_s = 0.0

    def __call__(self, trial: optuna.Trial) -> list[float]:
        if self.spec.search.thresholds == "sampled":
            point = self.space.sampled_point(trial)
            stages, accelerator, reuse, thresholds = point.stages, point.accelerator, point.reuse, point.thresholds[None]
            criterion = point.criterion
        else:
            structure = self.space.structure(trial)
            stages, accelerator, reuse = self.space.stages(structure), structure.accelerator, structure.cascade.reuse
            criterion = structure.criterion
            start = time.perf_counter()
            thresholds = self.problem.threshold_front(stages, accelerator, reuse, criterion=criterion)
            if self.spec.search.guarantee is not None:  # safer candidates for the certificate, fixed on these rows
                thresholds = np.vstack([thresholds, self.problem.safer_thresholds(stages, thresholds, criterion)])
            self.evaluate_s += time.perf_counter() - start
        start = time.perf_counter()
        calib = self.problem.point_metrics(stages, thresholds, "calib", accelerator, reuse, criterion)
        keep = self._kept(calib)
        test = self.problem.point_metrics(stages, thresholds[keep], "test", accelerator, reuse, criterion)
        self.evaluate_s += time.perf_counter() - start
        cascade = " > ".join(self.problem.names[s] for s in stages)
        configuration = {"stage_bits": tuple(self.problem.variants[s].bits or accelerator.bits for s in stages),
                         "sram_bytes": accelerator.sram_bytes, "partition": tuple(accelerator.partition),
                         "threshold_front": "sampled" if self.spec.search.thresholds == "sampled"
                         else "exact" if len(stages) <= EXACT_STAGES else "approximate"}
        # one list of layer mappings for every point of the front; a system attribute, kept out of those
        # optuna-dashboard lists
        mappings = LayerMapping.of_stages(self.problem.stage_costs(stages, accelerator, reuse))
        breakdowns = {split: self.problem.breakdowns(stages, thresholds[keep], split, accelerator, reuse, criterion)
                      for split in SPLITS}
        points = [TrialResult(trial.number, cascade, tuple(float(t) for t in thresholds[i]), {}, calib[i], t, True, i,
                              breakdown={split: breakdowns[split][j] for split in SPLITS}, **configuration).user_attrs()
                  for j, (i, t) in enumerate(zip(keep, test))]
        chosen = self._representative([calib[i] for i in keep])
        system: dict[str, Any] = {MAPPINGS: [m.to_json() for m in mappings]}
        if self.spec.search.max_accuracy_loss_pct is not None:
            value = constraint_value(calib[keep[chosen]], self.spec)
            system |= {constraint_attr("accuracy_loss"): value, DASHBOARD_CONSTRAINTS: [value]}
        # the whole front, and the representative point one attribute per metric (dashboard): one transaction
        set_trial_attrs(trial, {RECORD: json.dumps(points), **points[chosen]}, system)
        return objective_values(calib[keep[chosen]], self.spec.search.objectives)

    def _kept(self, calib: list[Metrics]) -> list[int]:
        """Indices of the points worth recording: all without a loss limit, else the feasible ones and a few beyond."""
        if self.spec.search.max_accuracy_loss_pct is None:
            return list(range(len(calib)))
        feasible = [i for i, m in enumerate(calib) if constraint_value(m, self.spec) <= 0]
        beyond = sorted((i for i, m in enumerate(calib) if constraint_value(m, self.spec) > 0),
                        key=lambda i: calib[i].accuracy_loss_pct)[:EXTRA_INFEASIBLE_POINTS]
        return sorted(feasible + beyond)

    def _representative(self, calib: list[Metrics]) -> int:
        """Index of the least-energy feasible point (no limit: the least-energy point losing nothing), else of the
        least lossy one."""
        order = range(len(calib))
        if self.spec.search.max_accuracy_loss_pct is not None:
            feasible = [i for i in order if constraint_value(calib[i], self.spec) <= 0]
        else:
            feasible = [i for i in order if calib[i].extra_errors <= 0]
        if feasible:
            return min(feasible, key=lambda i: (calib[i].energy_j, calib[i].accuracy_loss_pct))
        return min(order, key=lambda i: (calib[i].accuracy_loss_pct, calib[i].energy_j))


def constraint_value(calib: Metrics, spec: StudySpec) -> float:
    """Constraint value (<= 0: feasible) of the spec's loss limit on the calibration split (see `loss_excess`)."""
    assert spec.search.max_accuracy_loss_pct is not None
    return loss_excess(calib, spec.search.max_accuracy_loss_pct, spec.search.loss_confidence_z)


def loss_excess(calib: Metrics, limit_pct: float, z: float = 0.0) -> float:
    """How far a point's calibration loss is above `limit_pct` (<= 0: within it).

    Without a confidence margin the comparison is exact, on integer extra errors: e extra errors in n samples meet
    a limit of L % when e <= allowed_extra_errors(L, n), with L the decimal it is written as (10 extra in 1,000 meet
    1.0 %). With a margin z, the loss plus z standard errors of the paired difference is compared in floats.
    """
    if z == 0:
        allowed = allowed_errors(limit_pct, calib.samples)
        return 0.0 if calib.extra_errors <= allowed else 100.0 * (calib.extra_errors - allowed) / calib.samples
    return float(calib.accuracy_loss_pct + z * calib.accuracy_loss_se_pct) - limit_pct


def record_study_facts(study: optuna.Study, problem: CascadeProblem, spec: StudySpec) -> None:
    """Record baselines, margin curves, panels (study system attributes: large, kept out of the user attributes
    optuna-dashboard lists), the big net, the loss limit and the settings on the study (what reports read)."""
    report_data = {"baselines": [b.to_json() for b in baselines(problem, spec)],
                   "smrc": [dataclasses.asdict(c) for c in margin_curves(problem)],
                   "panels": [p.to_json() for p in panels(problem, spec)]}
    for key, value in report_data.items():
        study._storage.set_study_system_attr(study._study_id, f"{REPORT_PREFIX}{key}", value)
    study.set_user_attr("big", problem.names[problem.big])
    study.set_user_attr("max_accuracy_loss_pct", spec.search.max_accuracy_loss_pct)
    study.set_user_attr("loss_confidence_z", spec.search.loss_confidence_z)
    guarantee = spec.search.guarantee
    study.set_user_attr("loss_guarantee", None if guarantee is None else {"alpha_pct": guarantee.alpha_pct,
                                                                          "delta": guarantee.delta})
    study.set_user_attr("settings", accelerator_settings(problem))


def run_search(study: optuna.Study, problem: CascadeProblem, spec: StudySpec, n_trials: int | None,
               progress: bool = True, until: int | None = None, stop: StopRequest | None = None,
               callbacks: list[Callable[..., None]] | None = None, certify: bool = True) -> SearchTiming:
    """Record the study's facts, then add `n_trials` trials, or (with `until`) run until the study holds `until`
    completed trials whoever ran them; stops after the trial in flight when `stop` is requested. A small structure
    space is enumerated: run as a queue (`dse.core.enumeration`) in which each structure completes once, `n_trials`
    and `until` counting distinct structures. With a loss guarantee and `certify` (not in a worker), the front is
    certified at the end unless the study already holds a certificate (`certify_once`)."""
    record_study_facts(study, problem, spec)
    objective = CascadeObjective(problem, spec)
    scoring_before = problem.scoring_s
    start = time.perf_counter()
    stop = stop or StopRequest()
    queue = structure_queue(objective.space, spec)
    if queue is None:
        done = run_trials(study, objective, n_trials, until, stop, progress, callbacks)
    else:
        target = until if until is not None else queue.state(study).complete + (n_trials or 0)
        done = run_queue(study, objective, queue, target, stop, callbacks)
    if certify and not stop.requested:  # an interrupted search is resumed, not certified
        certify_once(study, problem, spec)
    return SearchTiming(done, time.perf_counter() - start, problem.scoring_s - scoring_before, objective.evaluate_s)


def structure_queue(space: CascadeSpace, spec: StudySpec) -> StructureQueue | None:
    """The queue of a structure space small enough to enumerate (exact thresholds, `enumerate_limit`); else None."""
    if spec.search.thresholds != "exact" or spec.search.enumerate_limit == 0:
        return None
    structures = enumerate_structures(space, spec.search.enumerate_limit)
    return None if structures is None else StructureQueue(structures)


def space_queue(problem: CascadeProblem, spec: StudySpec) -> StructureQueue | None:
    """The queue of the spec's structure space when it is enumerated (`structure_queue`); else None."""
    return structure_queue(CascadeSpace(problem, spec), spec)


def enqueue_structures(study: optuna.Study, space: CascadeSpace, spec: StudySpec, n_trials: int) -> int:
    """When the structure space is small enough, queue up to `n_trials` structures that no trial holds yet (in a fixed
    order, so that repeated runs complete the enumeration) and return how many trials to run; else `n_trials`."""
    queue = structure_queue(space, spec)
    if queue is None:
        return n_trials
    return min(queue.refill(study, queue.state(study).complete + n_trials).queued, n_trials)


def certify_once(study: optuna.Study, problem: CascadeProblem, spec: StudySpec) -> Certificate | None:
    """The study's certificate: the stored one if any (its rows have been looked at: certifying a later front on
    them again would be a repeated look), else the front certified now and stored with the rows it used (None: no
    guarantee, or no completed trial yet)."""
    if spec.search.guarantee is None:
        return None
    stored = report_data(study).get("certificate")
    if stored is not None:
        return Certificate.from_json(stored)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    certificate = certify(study, problem, spec)
    study._storage.set_study_system_attr(study._study_id, CERTIFICATE, certificate.to_json())
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
        structure = replay_structure(space, trial.params)
        stages, accelerator, reuse = space.stages(structure), structure.accelerator, structure.cascade.reuse
        recorded = recorded_points(trial)
        order = sorted(range(len(recorded)), key=lambda i: -recorded[i]["calib_energy_j"])
        points = [recorded[i] for i in order]
        thresholds = np.array([p["thresholds"] for p in points], dtype=np.float64).reshape(len(points), -1)
        values = problem.evaluate(stages, thresholds, CERTIFY, accelerator, reuse, structure.criterion)
        count = fixed_sequence(values["worse"], values["better"], n, guarantee.alpha_pct, delta)
        if count == 0:
            continue
        worse, better, chosen = int(values["worse"][count - 1]), int(values["better"][count - 1]), thresholds[count - 1]
        out.append(CertifiedPoint(number, points[0]["cascade"], tuple(float(t) for t in chosen),
                                  guarantee.alpha_pct, delta, n, 100.0 * (worse - better) / n,
                                  100.0 * loss_upper_bound(worse, better, n, delta),
                                  float(values["energy_pj"][count - 1]) * PJ,
                                  problem.metrics(stages, chosen, "test", accelerator, reuse, structure.criterion),
                                  order[count - 1], float(values["energy_saving_pct"][count - 1])))
    source, rows = problem.rows[CERTIFY]
    digest = hashlib.sha256(f"{source}:{','.join(map(str, rows.tolist()))}".encode()).hexdigest()
    return Certificate(guarantee.alpha_pct, guarantee.delta, n, digest, len(trials), tuple(numbers), tuple(out))


def recorded_points(trial: optuna.trial.FrozenTrial) -> list[dict[str, Any]]:
    """Every point a trial recorded: one JSON string (so that Optuna copies a trial's front as one value), or the
    list itself, as studies recorded it before."""
    record = trial.user_attrs.get(RECORD, [])
    return json.loads(record) if isinstance(record, str) else record


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """True when every constraint value is <= 0 (Optuna's convention)."""
    return all(value <= 0 for value in (trial.constraints or {}).values())


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
    front, seen = np.empty_like(values), set()  # the front's values so far, in its first rows
    flagged: set[int] = set()
    # sorted by the first objective (a point is dominated only by points before it); of equal points the one of the
    # fewest stages (one net alone before the same net followed by a stage never reached), then the first run
    order = sorted(range(len(points)), key=lambda i: (tuple(values[i]), len(points[i].stages)))
    for i in order:
        key = tuple(values[i])
        if not points[i].feasible or key in seen or np.all(front[:len(flagged)] <= values[i], axis=1).any():
            continue
        front[len(flagged)] = values[i]
        flagged.add(i)
        seen.add(key)
    return [dataclasses.replace(p, pareto=i in flagged) for i, p in enumerate(points)]


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


def report_data(study: optuna.Study) -> dict[str, Any]:
    """The baselines, margin curves and panels `run_search` stored on the study (as study system attributes)."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {key[len(REPORT_PREFIX):]: value for key, value in attrs.items() if key.startswith(REPORT_PREFIX)}


def accelerator_settings(problem: CascadeProblem) -> dict[str, Any]:
    """The accelerator and technology the study prices on, in SI units with the unit in each key."""
    a, t = problem.accelerator, problem.technology
    return {"array_tm": a.tm, "array_tn": a.tn, "clock_hz": a.clock_hz, "sram_bytes": a.sram_bytes,
            "partition_input_weight_output": list(a.partition), "bits": a.bits, "tiling_rule": a.tiling_rule,
            "dataflow": a.dataflow,
            "priced_layers": problem.priced_layers, "technology_file": t.source, "mac_preset": t.mac_preset,
            "sram_preset": t.sram_preset, "dram_preset": t.dram_preset,
            "dram_energy_j_per_bit": t.dram_energy_pj_per_bit * PJ, "dram_background_w": t.dram_background_mw / 1e3,
            "dram_bandwidth_bytes_per_s": t.dram_bandwidth_bytes_per_s}


def search_study(problem: CascadeProblem, spec: StudySpec, n_trials: int) -> optuna.Study:
    """An in-memory study of `n_trials` on `problem` (for protocols that repeat the search many times)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize"] * len(spec.search.objectives), sampler=make_sampler(spec))
    for key, value in (("objectives", list(spec.search.objectives)),
                       ("max_accuracy_loss_pct", spec.search.max_accuracy_loss_pct),
                       ("loss_confidence_z", spec.search.loss_confidence_z)):
        study.set_user_attr(key, value)
    objective = CascadeObjective(problem, spec)
    study.optimize(objective, n_trials=enqueue_structures(study, objective.space, spec, n_trials))
    return study


def best_feasible(study: optuna.Study, problem: CascadeProblem) -> tuple[list[int], float]:
    """The least-calibration-energy feasible two-stage point as (stages, its threshold)."""
    feasible = [t for t in trial_results(study) if t.feasible]
    if not feasible:
        raise SpecError(f"study '{study.study_name}': no feasible trial")
    best = min(feasible, key=lambda t: (t.calib.energy_j, t.calib.accuracy_loss_pct))
    return [problem.index(name) for name in best.cascade.split(" > ")], float(best.thresholds[0])
