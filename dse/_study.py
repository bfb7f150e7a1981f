"""The Optuna study of a spec: space, objective, baselines, resume, and result tables."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import optuna
import pandas as pd

from dse._problem import CascadeProblem
from dse._spec import SpecError, StudySpec

OBJECTIVE_COLUMNS = {"energy": "energy_pj", "accuracy_loss": "accuracy_loss_pct", "latency": "latency_s",
                     "storage": "storage_bytes"}
SPLITS = ("calib", "test")


def spec_digest(spec: StudySpec) -> str:
    """Fingerprint of what defines the study's space and values (not the trial budget)."""
    search = {k: v for k, v in asdict(spec.search).items() if k not in ("n_trials", "seed")}
    payload = {"data": asdict(spec.data), "training": asdict(spec.training), "nets": asdict(spec.nets),
               "accelerator": asdict(spec.accelerator), "search": search}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


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


def baseline_rows(problem: CascadeProblem) -> list[dict]:
    """Big-only and each little-only, on both splits (single-stage cascades)."""
    rows = []
    costs = problem.costs()
    for index, name in enumerate(problem.names):
        row = {"kind": "big only" if index == problem.big else "little only", "net": name}
        for split in SPLITS:
            metrics = problem.evaluate([index], np.zeros((1, 0)), split, costs)
            row.update({f"{split}_{key}": float(value[0]) for key, value in metrics.items()})
        rows.append(row)
    return rows


@dataclass
class SearchTiming:
    """Where search time went: total wall time vs. time inside our evaluation."""

    trials: int
    wall_s: float
    evaluate_s: float

    @property
    def overhead_ms_per_trial(self) -> float:
        """Optuna bookkeeping (sampler + storage) per trial, in ms."""
        return 1000.0 * (self.wall_s - self.evaluate_s) / max(self.trials, 1)

    @property
    def evaluate_ms_per_trial(self) -> float:
        """Our cascade evaluation and pricing per trial, in ms."""
        return 1000.0 * self.evaluate_s / max(self.trials, 1)


class BigLittleObjective:
    """Optuna objective: little-net choice and threshold; values on calib, test metrics as user attrs."""

    def __init__(self, problem: CascadeProblem, spec: StudySpec) -> None:
        self.problem = problem
        self.spec = spec
        self.littles = list(spec.nets.little)
        self.costs = problem.costs()
        self.evaluate_s = 0.0

    def __call__(self, trial: optuna.Trial) -> list[float]:
        little = trial.suggest_categorical("little", self.littles)
        low, high = self.spec.search.threshold_range
        threshold = trial.suggest_float("threshold", low, high)
        start = time.perf_counter()
        stages = [self.problem.index(little), self.problem.big]
        metrics = {split: self.problem.evaluate(stages, np.array([[threshold]]), split, self.costs)
                   for split in SPLITS}
        self.evaluate_s += time.perf_counter() - start
        for split, values in metrics.items():
            for key, value in values.items():
                trial.set_user_attr(f"{split}_{key}", float(value[0]))
        limit = self.spec.search.max_accuracy_loss_pct
        if limit is not None:
            trial.set_constraint("accuracy_loss", float(metrics["calib"]["accuracy_loss_pct"][0]) - limit)
        return [float(metrics["calib"][OBJECTIVE_COLUMNS[name]][0]) for name in self.spec.search.objectives]


def run_search(study: optuna.Study, problem: CascadeProblem, spec: StudySpec, n_trials: int,
               progress: bool = True) -> SearchTiming:
    """Record the baselines on the study, then add `n_trials` trials to it."""
    study.set_user_attr("baselines", baseline_rows(problem))
    study.set_user_attr("big", problem.names[problem.big])
    study.set_user_attr("max_accuracy_loss_pct", spec.search.max_accuracy_loss_pct)
    objective = BigLittleObjective(problem, spec)
    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, show_progress_bar=progress and n_trials > 0)
    return SearchTiming(n_trials, time.perf_counter() - start, objective.evaluate_s)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per completed trial: params, calib/test metrics, feasibility, and calib Pareto flag.

    Trials whose calibration objectives tie with an earlier Pareto trial (e.g. two thresholds between
    the same pair of margins) are not flagged again, so the front lists each distinct point once.
    """
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    pareto_values: set[tuple[float, ...]] = set()
    pareto: set[int] = set()
    for trial in sorted(study.best_trials, key=lambda t: t.number):
        if tuple(trial.values) not in pareto_values:
            pareto_values.add(tuple(trial.values))
            pareto.add(trial.number)
    rows = []
    for trial in trials:
        constraints = trial.constraints or {}
        rows.append({"trial": trial.number, **trial.params, **trial.user_attrs,
                     "feasible": all(value <= 0 for value in constraints.values()), "pareto": trial.number in pareto})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["pareto", "calib_energy_pj"], ascending=[False, True]).reset_index(drop=True)


def pareto_frame(study: optuna.Study) -> pd.DataFrame:
    """The distinct feasible calibration-Pareto trials, sorted by energy, with their test-split metrics."""
    frame = trials_frame(study)
    if frame.empty:
        return frame
    return frame[frame["pareto"]].sort_values("calib_energy_pj").reset_index(drop=True)


def baselines_frame(study: optuna.Study) -> pd.DataFrame:
    """Baselines recorded on the study (big only, little only)."""
    return pd.DataFrame(study.user_attrs.get("baselines", []))


def list_study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of the studies in a storage."""
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


