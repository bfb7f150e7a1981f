"""The trial objective: one cascade structure per trial, its threshold front solved and recorded on the trial."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import optuna

from dse.core.evaluator import Chain
from dse.core.gc_pause import gc_paused
from dse.core.optuna_adapter import constraint_attr, set_trial_attrs
from dse.core.problem import CascadeProblem
from dse.core.results import MAPPINGS, PJ, LayerMapping, Metrics, TrialResult, allowed_errors
from dse.core.space import CascadeSpace
from dse.core.spec import StudySpec
from dse.core.study_attrs import DASHBOARD_CONSTRAINTS, RECORD


OBJECTIVE_COLUMNS = {"energy": "energy_pj", "accuracy_loss": "accuracy_loss_pct", "latency": "latency_s",
                     "storage": "storage_bytes"}
SPLITS = ("calib", "test")

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

    @gc_paused()  # a front's points are thousands of small acyclic objects
    def __call__(self, trial: optuna.Trial) -> list[float]:
        if self.spec.search.thresholds == "sampled":
            point = self.space.sampled_point(trial)
            chain = Chain(tuple(point.stages), point.accelerator, point.reuse, point.criterion)
            thresholds = point.thresholds[None]
        else:
            chain = self.space.chain(self.space.structure(trial))
            start = time.perf_counter()
            front = self.problem.evaluator.threshold_front(chain, "calib", self._max_errors(), EXTRA_INFEASIBLE_POINTS)
            # safer candidates for the certificate, fixed on these rows
            safer = [self.problem.evaluator.safer_thresholds(chain, front)] if self.spec.search.guarantee is not None else []
            thresholds = np.vstack([front, *safer])
            self.evaluate_s += time.perf_counter() - start
        evaluator, stages, accelerator = self.problem.evaluator, list(chain.stages), chain.accelerator
        start = time.perf_counter()
        calib = evaluator.point_metrics(chain, thresholds, "calib")
        keep = self._kept(calib)
        test = evaluator.point_metrics(chain, thresholds[keep], "test")
        self.evaluate_s += time.perf_counter() - start
        cascade = " > ".join(self.problem.names[s] for s in stages)
        configuration = {"stage_bits": tuple(self.problem.variants[s].bits or accelerator.bits for s in stages),
                         "sram_bytes": accelerator.sram_bytes, "partition": tuple(accelerator.partition),
                         "threshold_front": "sampled" if self.spec.search.thresholds == "sampled"
                         else "exact" if len(stages) <= EXACT_STAGES else "approximate"}
        # one list of layer mappings for every point of the front; a system attribute, kept out of those
        # optuna-dashboard lists
        mappings = LayerMapping.of_stages(evaluator.costs(chain))
        breakdowns = {split: evaluator.breakdowns(chain, thresholds[keep], split) for split in SPLITS}
        points = [TrialResult(trial.number, cascade, tuple(float(t) for t in thresholds[i]), {}, calib[i], t, True, i,
                              breakdown={split: breakdowns[split][j] for split in SPLITS}, **configuration).user_attrs()
                  for j, (i, t) in enumerate(zip(keep, test))]
        chosen = self._representative([calib[i] for i in keep])
        system: dict[str, Any] = {MAPPINGS: [m.to_json() for m in mappings]}
        if self.spec.search.max_accuracy_loss_pct is not None:
            value = constraint_value(calib[keep[chosen]], self.spec)
            system |= {constraint_attr("accuracy_loss"): value, DASHBOARD_CONSTRAINTS: [value]}
        # the whole front, and the representative point one attribute per metric (dashboard): one transaction
        set_trial_attrs(trial, {RECORD: json.dumps(points, check_circular=False), **points[chosen]}, system)
        return objective_values(calib[keep[chosen]], self.spec.search.objectives)

    def _max_errors(self) -> int | None:
        """The most calibration errors of a point `_kept` keeps as feasible, when that is an exact count (a loss limit
        without a margin) and no certificate reads the whole front (its safer candidates start from the front's
        safest point); else None: the whole front is solved."""
        search = self.spec.search
        if search.max_accuracy_loss_pct is None or search.loss_confidence_z != 0 or search.guarantee is not None:
            return None
        big_correct = self.problem.correct["calib"][self.problem.big]
        return int(big_correct.size - big_correct.sum()) + allowed_errors(search.max_accuracy_loss_pct,
                                                                         big_correct.size)

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
