"""The search space: each mechanism contributes its choices; a trial becomes one priced cascade point.

Today's mechanisms: big/little structure (which little net), threshold (sampled directly, derived
exactly from lambda by Park's Eq. 4, or the exact least-energy threshold under a calibration loss
budget), and the accelerator's SRAM size and partition.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import optuna

import costmodel
from dse._problem import CascadeProblem
from dse._spec import StudySpec
from dse._static import static_threshold


@dataclass(frozen=True)
class CascadePoint:
    """One design point: stage variant indices, their thresholds, and the accelerator that runs them."""

    stages: list[int]
    thresholds: np.ndarray  # (S-1,)
    accelerator: costmodel.Accelerator


class BudgetThresholds:
    """Exact least-big-net-use threshold of each little net under a budget of extra calibration errors.

    Sorted once per little net: accepting the k highest margins costs cumsum(correct_big - correct_little)[k]
    extra errors, so the answer for budget b is the largest k (at a margin boundary) whose loss is <= b.
    """

    def __init__(self, problem: CascadeProblem, split: str = "calib") -> None:
        self.tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.problem, self.split = problem, split

    def _table(self, little: int) -> tuple[np.ndarray, np.ndarray]:
        if little not in self.tables:
            margin = self.problem.margin[self.split][little].astype(np.float64)
            delta = (self.problem.correct[self.split][self.problem.big].astype(np.int64)
                     - self.problem.correct[self.split][little].astype(np.int64))
            order = np.argsort(-margin, kind="stable")
            sorted_margin = margin[order]
            last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_margin)), len(margin) - 1]
            losses = np.r_[0, np.cumsum(delta[order])[last_of_tie]]
            thresholds = np.r_[np.inf, sorted_margin[last_of_tie]]
            self.tables[little] = (thresholds, losses)
        return self.tables[little]

    def threshold(self, little: int, budget: int) -> float:
        """Lowest threshold (most samples kept on the little net) whose extra errors are <= budget."""
        thresholds, losses = self._table(little)
        ok = np.flatnonzero(losses <= budget)
        return float(thresholds[ok[-1]]) if len(ok) else float("inf")


class BigLittleSpace:
    """Little-net choice, threshold mode and value, and SRAM size/partition, as Optuna suggestions."""

    def __init__(self, problem: CascadeProblem, spec: StudySpec) -> None:
        self.problem, self.spec = problem, spec
        self.littles = list(spec.nets.little)
        self.budgets = BudgetThresholds(problem)
        calib = problem.margin["calib"].shape[1]
        limit = spec.search.max_accuracy_loss_pct
        self.max_budget = max(1, int(np.ceil((limit if limit is not None else 5.0) * calib / 100.0)))

    def suggest(self, trial: optuna.Trial) -> CascadePoint:
        """Draw one point: structure first, then accelerator, then thresholds."""
        little = self.problem.index(trial.suggest_categorical("little", self.littles))
        return CascadePoint([little, self.problem.big], np.array([self._threshold(trial, little)]),
                            self._accelerator(trial))

    def _threshold(self, trial: optuna.Trial, little: int) -> float:
        s = self.spec.search
        mode = trial.suggest_categorical("threshold_mode", list(s.threshold_modes))
        if mode == "lambda":
            lam = trial.suggest_float("lambda", *s.lambda_range, log=True)
            margin = self.problem.margin["calib"]
            correct = self.problem.correct["calib"]
            theta = static_threshold(margin[little], correct[little], correct[self.problem.big], lam).threshold
        elif mode == "loss_budget":
            theta = self.budgets.threshold(little, trial.suggest_int("loss_budget", 0, self.max_budget))
        else:
            theta = trial.suggest_float("threshold", *s.threshold_range)
        trial.set_user_attr("applied_threshold", float(theta))
        return theta

    def _accelerator(self, trial: optuna.Trial) -> costmodel.Accelerator:
        s, base = self.spec.search, self.problem.accelerator
        changes: dict = {}
        if len(s.sram_choices) > 1:
            changes["sram_bytes"] = costmodel.parse_bytes(trial.suggest_categorical("sram", list(s.sram_choices)))
        if s.partition_step > 0:
            steps = int(round(1.0 / s.partition_step))
            input_steps = trial.suggest_int("partition_input", 1, steps - 2)
            weight_steps = trial.suggest_int("partition_weight", 1, steps - 1 - input_steps)
            changes["partition"] = (input_steps / steps, weight_steps / steps,
                                    (steps - input_steps - weight_steps) / steps)
        return dataclasses.replace(base, **changes) if changes else base
