"""The Optuna study of a spec: which study a run uses, opening or resuming it, and running the search.

The search's parts live beside it: the spec fingerprint (`dse.core.fingerprint`), the trial objective
(`dse.core.objective`), the facts recorded for the report (`dse.core.facts`), certification (`dse.core.certify`) and
reading results back (`dse.core.readback`); this module's `__all__` lists the study API, those read-back names
included.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import optuna

from dse.core.certify import certify_once
from dse.core.enumeration import StructureQueue, run_queue
from dse.core.facts import record_study_facts
from dse.core.fingerprint import ChangedSpec, digest_payload, spec_changes, spec_digest
from dse.core.objective import OBJECTIVE_COLUMNS, CascadeObjective
from dse.core.problem import CascadeProblem
from dse.core.readback import best_feasible, is_feasible, study_results
from dse.core.space import CascadeSpace, enumerate_structures
from dse.core.spec import StudySpec
from dse.core.storage import open_storage, study_exists
from dse.core.study_attrs import SPEC_ATTR, SPEC_NAME_ATTR, SPEC_SOURCE_ATTR, report_data, store_report_data
from dse.core.workers import StopRequest, run_trials

__all__ = ["SearchTiming", "best_feasible", "check_resumable", "enqueue_structures", "is_feasible", "make_sampler",
           "open_study", "run_search", "search_study", "space_queue", "study_name_for", "study_results"]


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
        store_report_data(study, SPEC_ATTR, digest_payload(spec))
        for key, value in ((SPEC_NAME_ATTR, spec.name), (SPEC_SOURCE_ATTR, spec.source),
                           ("objectives", list(spec.search.objectives))):
            study.set_user_attr(key, value)
        with warnings.catch_warnings():  # experimental since 3.2, and what the dashboard and exports read
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_COLUMNS[name] for name in spec.search.objectives])
        study.set_user_attr("spec_digest", spec_digest(spec))  # last: a study with a digest has all of the above
    study.sampler = make_sampler(spec, (worker, len(study.get_trials(deepcopy=False))))
    return study


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
