"""The search space: the enabled mechanisms shape each trial's cascade; the core adds thresholds and the accelerator.

A stage answers when its confidence under the trial's exit criterion ([search] criteria: margin, max softmax,
entropy) reaches its threshold. Two-stage cascades set their threshold by a mode ([search] threshold_modes): sampled
directly, the exact least-escalation threshold under a budget of extra calibration errors, or a mode a mechanism
brings. Longer cascades sample one threshold per stage. The accelerator's SRAM size and buffer partition are searched when the
spec asks for it.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import optuna

import costmodel
from dse.core.mechanism import Cascade, ThresholdRule, registry
from dse.core.problem import CascadeProblem
from dse.core.spec import StudySpec
from dse.core.sweep import accept_sweep
from nets import Variant


@dataclass(frozen=True)
class CascadePoint:
    """One design point: stage variant indices, their thresholds, and the accelerator that runs them."""

    stages: list[int]
    thresholds: np.ndarray  # (S-1,)
    accelerator: costmodel.Accelerator
    reuse: bool = False  # later stages widen earlier ones (increments): priced in reuse mode
    criterion: str = "margin"  # the confidence the thresholds apply to

    def cascade(self, names: list[str]) -> str:
        """The stages' variant names joined by ' > '."""
        return " > ".join(names[s] for s in self.stages)


class BudgetThresholds:
    """Exact least-escalation threshold of a two-stage cascade under a budget of extra calibration errors.

    Sorted once per (first, second) pair: accepting the k highest first-stage margins costs
    cumsum(correct_second - correct_first)[k] extra errors, so the answer for budget b is the largest k
    (at a margin boundary) whose loss is <= b.
    """

    def __init__(self, problem: CascadeProblem, split: str = "calib") -> None:
        self.tables: dict[tuple[int, int, str], tuple[np.ndarray, np.ndarray]] = {}
        self.problem, self.split = problem, split

    def _table(self, first: int, second: int, criterion: str) -> tuple[np.ndarray, np.ndarray]:
        if (first, second, criterion) not in self.tables:
            delta = (self.problem.correct[self.split][second].astype(np.int64)
                     - self.problem.correct[self.split][first].astype(np.int64))
            thresholds, _, losses = accept_sweep(self.problem.confidence(criterion, self.split)[first], delta)
            self.tables[(first, second, criterion)] = (thresholds, losses)
        return self.tables[(first, second, criterion)]

    def threshold(self, first: int, second: int, budget: int, criterion: str = "margin") -> float:
        """Lowest threshold (most samples kept on the first stage) whose extra errors are <= budget."""
        thresholds, losses = self._table(first, second, criterion)
        ok = np.flatnonzero(losses <= budget)
        return float(thresholds[ok[-1]]) if len(ok) else float("inf")


def increasing_subsets(values: tuple, sizes: range) -> list[str]:
    """Every increasing subset of `values` with a size in `sizes`, as '/'-joined labels (Optuna categoricals)."""
    return ["/".join(f"{v:g}" for v in combo) for k in sizes for combo in itertools.combinations(values, k)]


class CascadeSpace:
    """A trial becomes one priced cascade: each enabled mechanism shapes the stages, then thresholds and accelerator."""

    def __init__(self, problem: CascadeProblem, spec: StudySpec) -> None:
        self.problem, self.spec = problem, spec
        self.shapers = [(registry()[name], spec.section(name)) for name in spec.enabled()]
        self.budgets = BudgetThresholds(problem)
        calib = problem.margin["calib"].shape[1]
        limit = spec.search.max_accuracy_loss_pct
        self.max_budget = max(1, int(np.ceil((limit if limit is not None else 5.0) * calib / 100.0)))
        self.modes: dict[str, ThresholdRule] = {"threshold": self._sampled, "loss_budget": self._budget}
        for mechanism, config in self.shapers:
            self.modes.update(mechanism.threshold_modes(spec, config))

    def suggest(self, trial: optuna.Trial) -> CascadePoint:
        """Draw one point: the mechanisms' choices in registry order, then thresholds and accelerator."""
        cascade = Cascade((Variant(self.spec.nets.big),))
        for mechanism, config in self.shapers:
            cascade = mechanism.shape(trial, self.spec, config, cascade)
        stages = [self.problem.ensure(variant) for variant in cascade.stages]
        criteria = self.spec.search.criteria
        criterion = trial.suggest_categorical("criterion", list(criteria)) if len(criteria) > 1 else criteria[0]
        if len(stages) == 2:
            mode = trial.suggest_categorical("threshold_mode", list(self.spec.search.threshold_modes))
            thresholds = np.array([self.modes[mode](trial, self.problem.under(criterion), stages)])
        else:
            thresholds = np.array([trial.suggest_float(f"threshold_{i}", *self.spec.search.threshold_range)
                                   for i in range(len(stages) - 1)])
        return CascadePoint(stages, thresholds, self._accelerator(trial), cascade.reuse, criterion)

    def _sampled(self, trial: optuna.Trial, problem: CascadeProblem, stages: list[int]) -> float:
        return trial.suggest_float("threshold", *self.spec.search.threshold_range)

    def _budget(self, trial: optuna.Trial, problem: CascadeProblem, stages: list[int]) -> float:
        criterion = trial.params.get("criterion", self.spec.search.criteria[0])
        return self.budgets.threshold(stages[0], stages[1], trial.suggest_int("loss_budget", 0, self.max_budget),
                                      criterion)

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
