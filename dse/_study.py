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

from dse._panels import mechanism_panels
from dse._problem import CascadeProblem
from dse._smrc import smrc
from dse._space import CascadeSpace
from dse._spec import SECTIONS, SpecError, StudySpec
from dse._static import paper_static_choice

OBJECTIVE_COLUMNS = {"energy": "energy_pj", "accuracy_loss": "accuracy_loss_pct", "latency": "latency_s",
                     "storage": "storage_bytes"}
SPLITS = ("calib", "test")
RECORD = "record"  # the trial user attribute holding the cascade, its threshold and all calib/test metrics


def spec_digest(spec: StudySpec) -> str:
    """Fingerprint of what defines the study's space and values (not the trial budget)."""
    payload = {name: asdict(getattr(spec, name)) for name in SECTIONS}
    payload["search"] = {k: v for k, v in payload["search"].items() if k not in ("n_trials", "seed")}
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


def _metrics_row(problem: CascadeProblem, stages: list[int], thresholds: np.ndarray, **head: object) -> dict:
    """A row of calib and test metrics for one cascade at the spec's accelerator."""
    row: dict = dict(head)
    for split in SPLITS:
        metrics = problem.evaluate(stages, np.atleast_2d(thresholds), split)
        row.update({f"{split}_{key}": float(value[0]) for key, value in metrics.items()})
    return row


def baseline_rows(problem: CascadeProblem, littles: list[str], max_loss_pct: float | None) -> list[dict]:
    """Every variant alone (big only, each little only, other single stages) and, given a loss limit,
    Park's lambda-sweep choice for each little net before the big one."""
    def kind(index: int) -> str:
        if index == problem.big:
            return "big only"
        return "little only" if problem.names[index] in littles else "single stage"

    rows = [_metrics_row(problem, [index], np.zeros(0), kind=kind(index), net=name)
            for index, name in enumerate(problem.names)]
    if max_loss_pct is not None:
        calib_margin, calib_correct = problem.margin["calib"], problem.correct["calib"]
        for name in littles:
            index = problem.index(name)
            choice = paper_static_choice(calib_margin[index], calib_correct[index], calib_correct[problem.big],
                                         max_loss_pct)
            rows.append(_metrics_row(problem, [index, problem.big], np.array([choice.threshold]),
                                     kind="lambda sweep (Park 2015)", net=name, threshold=choice.threshold,
                                     **{"lambda": choice.lam}))
    return rows


def smrc_rows(problem: CascadeProblem, split: str = "test", points: int = 101) -> list[dict]:
    """SMRC of every variant on `split`: AUC, a down-sampled ROC curve and margin histograms."""
    rows = []
    for index, name in enumerate(problem.names):
        result = smrc(problem.margin[split][index], problem.correct[split][index])
        keep = np.unique(np.linspace(0, len(result.false_positive_rate) - 1, points).astype(int))
        rows.append({"net": name, "auc": result.auc, "fpr": result.false_positive_rate[keep].tolist(),
                     "tpr": result.true_positive_rate[keep].tolist(), "bin_edges": result.bin_edges.tolist(),
                     "hist_correct": result.hist_correct.tolist(), "hist_wrong": result.hist_wrong.tolist()})
    return rows


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
    """Optuna objective: a point from the space, values on the calibration split, test metrics as user attrs."""

    def __init__(self, problem: CascadeProblem, spec: StudySpec) -> None:
        self.problem, self.spec = problem, spec
        self.space = CascadeSpace(problem, spec)
        self.evaluate_s = 0.0

    def __call__(self, trial: optuna.Trial) -> list[float]:
        point = self.space.suggest(trial)
        start = time.perf_counter()
        metrics = {split: self.problem.evaluate(point.stages, point.thresholds[None, :], split, point.accelerator,
                                                point.reuse) for split in SPLITS}
        self.evaluate_s += time.perf_counter() - start
        record = {f"{split}_{key}": float(value[0]) for split, values in metrics.items() for key, value in values.items()}
        trial.set_user_attr(RECORD, {**point.describe(self.problem.names), **record})  # one storage write, not ~20
        limit = self.spec.search.max_accuracy_loss_pct
        if limit is not None:  # on the calibration loss plus z standard errors of the paired difference
            calib = metrics["calib"]
            bound = calib["accuracy_loss_pct"][0] + self.spec.search.loss_confidence_z * calib["accuracy_loss_se_pct"][0]
            trial.set_constraint("accuracy_loss", float(bound) - limit)
        return [float(metrics["calib"][OBJECTIVE_COLUMNS[name]][0]) for name in self.spec.search.objectives]


def run_search(study: optuna.Study, problem: CascadeProblem, spec: StudySpec, n_trials: int,
               progress: bool = True) -> SearchTiming:
    """Record baselines and SMRC on the study, then add `n_trials` trials to it."""
    study.set_user_attr("baselines", baseline_rows(problem, list(spec.nets.little), spec.search.max_accuracy_loss_pct))
    study.set_user_attr("smrc", smrc_rows(problem))
    study.set_user_attr("panels", mechanism_panels(problem, spec))
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
        rows.append({"trial": trial.number, **trial.params, **trial.user_attrs.get(RECORD, {}),
                     "feasible": is_feasible(trial), "pareto": trial.number in pareto})
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


def search_study(problem: CascadeProblem, spec: StudySpec, n_trials: int) -> optuna.Study:
    """An in-memory study of `n_trials` on `problem` (for protocols that repeat the search many times)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize"] * len(spec.search.objectives), sampler=make_sampler(spec))
    study.optimize(CascadeObjective(problem, spec), n_trials=n_trials)
    return study


def best_feasible(study: optuna.Study, problem: CascadeProblem) -> tuple[list[int], float]:
    """The least-calibration-energy feasible big/little trial as (stages, applied threshold)."""
    feasible = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if is_feasible(t)]
    if not feasible:
        raise SpecError(f"study '{study.study_name}': no feasible trial")
    best = min(feasible, key=lambda t: (t.user_attrs[RECORD]["calib_energy_pj"],
                                        t.user_attrs[RECORD]["calib_accuracy_loss_pct"]))
    return [problem.index(best.params["little"]), problem.big], float(best.user_attrs[RECORD]["applied_threshold"])
