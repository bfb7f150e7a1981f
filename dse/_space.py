"""The search space: each mechanism contributes its choices; a trial becomes one priced cascade point.

Mechanisms: big/little (which little net; Park 2015), dynamic bit-width (an increasing set of the big
net's bit-widths; Jahier Pagliari 2018), increments (golden channel fractions priced in reuse mode;
Tann 2016), effort knobs (DyVEDeep-style), thresholds (sampled directly, derived exactly from lambda
by Park's Eq. 4, or the exact least-escalation threshold under a calibration loss budget), and the
accelerator's SRAM size and partition.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass

import numpy as np
import optuna

import costmodel
from dse._problem import CascadeProblem
from dse._spec import StudySpec
from dse._static import static_threshold
from dse._sweep import accept_sweep
from nets import Variant, architecture


@dataclass(frozen=True)
class CascadePoint:
    """One design point: stage variant indices, their thresholds, and the accelerator that runs them."""

    stages: list[int]
    thresholds: np.ndarray  # (S-1,)
    accelerator: costmodel.Accelerator
    reuse: bool = False  # later stages widen earlier ones (increments): priced in reuse mode

    def describe(self, names: list[str]) -> dict:
        """What the point runs, for the trial's record: the cascade and its first threshold."""
        return {"cascade": " > ".join(names[s] for s in self.stages),
                "applied_threshold": float(self.thresholds[0]) if len(self.thresholds) else float("nan")}


class BudgetThresholds:
    """Exact least-escalation threshold of a two-stage cascade under a budget of extra calibration errors.

    Sorted once per (first, second) pair: accepting the k highest first-stage margins costs
    cumsum(correct_second - correct_first)[k] extra errors, so the answer for budget b is the largest k
    (at a margin boundary) whose loss is <= b.
    """

    def __init__(self, problem: CascadeProblem, split: str = "calib") -> None:
        self.tables: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.problem, self.split = problem, split

    def _table(self, little: int, big: int) -> tuple[np.ndarray, np.ndarray]:
        if (little, big) not in self.tables:
            delta = (self.problem.correct[self.split][big].astype(np.int64)
                     - self.problem.correct[self.split][little].astype(np.int64))
            thresholds, _, losses = accept_sweep(self.problem.margin[self.split][little], delta)
            self.tables[(little, big)] = (thresholds, losses)
        return self.tables[(little, big)]

    def threshold(self, little: int, big: int, budget: int) -> float:
        """Lowest threshold (most samples kept on the first stage) whose extra errors are <= budget."""
        thresholds, losses = self._table(little, big)
        ok = np.flatnonzero(losses <= budget)
        return float(thresholds[ok[-1]]) if len(ok) else float("inf")


NO_LITTLE = "none"


def increasing_subsets(values: tuple, sizes: range) -> list[str]:
    """Every increasing subset of `values` with a size in `sizes`, as '/'-joined labels (Optuna categoricals)."""
    return ["/".join(f"{v:g}" for v in combo) for k in sizes for combo in itertools.combinations(values, k)]


@functools.cache
def applicable_knobs(net: str, mechanisms: tuple[str, ...], scopes: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """Per knob scope, the mechanisms that can act on `net` there (e.g. no feature-level knob on FC layers)."""
    from dse._effort import mechanism_grid
    from nets._effort import EffortError, resolve_knobs

    plan = []
    for scope in scopes:
        usable = []
        for mechanism in mechanisms:
            try:
                resolve_knobs(architecture(net), 1.0, mechanism_grid(mechanism, scope)[0])
                usable.append(mechanism)
            except EffortError:
                continue
        plan.append((scope, tuple(usable)))
    return plan


class CascadeSpace:
    """Each mechanism's choices as Optuna suggestions: a trial becomes one priced cascade.

    Structure: a little net (or none) before the big net's stages, which are the big net itself, an
    increasing set of its bit-widths ([bitwidth]), or increments: golden widths f1 < ... < 1 priced in
    reuse mode ([incremental]). Effort knobs ([effort]) attach to the chosen nets. Then the thresholds
    and the accelerator's SRAM size and partition.
    """

    def __init__(self, problem: CascadeProblem, spec: StudySpec) -> None:
        self.problem, self.spec = problem, spec
        self.littles = list(spec.nets.little)
        if spec.bitwidth.bitwidths or spec.effort.mechanisms:
            self.littles.append(NO_LITTLE)
        self.budgets = BudgetThresholds(problem)
        calib = problem.margin["calib"].shape[1]
        limit = spec.search.max_accuracy_loss_pct
        self.max_budget = max(1, int(np.ceil((limit if limit is not None else 5.0) * calib / 100.0)))
        b, inc = spec.bitwidth, spec.incremental
        self.bit_sets = increasing_subsets(b.bitwidths, range(1, b.max_stages + 1)) if b.bitwidths else []
        low, high = inc.n_increments
        self.fraction_sets = increasing_subsets(inc.widths, range(low - 1, min(high - 1, len(inc.widths)) + 1))
        self.structures = (["little_big"] if self.littles else []) + (["increments"] if self.fraction_sets else [])

    def suggest(self, trial: optuna.Trial) -> CascadePoint:
        """Draw one point: structure first, then knobs, thresholds and accelerator."""
        structure = trial.suggest_categorical("structure", self.structures) if len(self.structures) > 1 \
            else self.structures[0]
        variants = self._increments(trial) if structure == "increments" else self._little_big(trial)
        variants = self._with_knobs(trial, variants)
        stages = [self.problem.ensure(v) for v in variants]
        thresholds = np.array([self._threshold(trial, stages)] if len(stages) == 2 and structure == "little_big"
                              else [trial.suggest_float(f"threshold_{i}", *self.spec.search.threshold_range)
                                    for i in range(len(stages) - 1)])
        return CascadePoint(stages, thresholds, self._accelerator(trial), structure == "increments")

    def _little_big(self, trial: optuna.Trial) -> list[Variant]:
        big = self.spec.nets.big
        little = trial.suggest_categorical("little", self.littles)
        if self.bit_sets:
            bits = [int(b) for b in trial.suggest_categorical("bitwidths", self.bit_sets).split("/")]
            bigs = [Variant(big, bits=b, rounding=self.spec.bitwidth.rounding) for b in bits]
        else:
            bigs = [Variant(big)]
        if little == NO_LITTLE:
            return bigs
        little_bits = self.spec.bitwidth.little_bits
        bits = trial.suggest_categorical("little_bits", ["float", *map(str, little_bits)]) if little_bits else "float"
        first = Variant(little) if bits == "float" else Variant(little, bits=int(bits),
                                                                 rounding=self.spec.bitwidth.rounding)
        return [first, *bigs]

    def _increments(self, trial: optuna.Trial) -> list[Variant]:
        fractions = [float(f) for f in trial.suggest_categorical("fractions", self.fraction_sets).split("/")]
        return [Variant(self.spec.nets.big, width=f) for f in fractions] + [Variant(self.spec.nets.big)]

    def _with_knobs(self, trial: optuna.Trial, variants: list[Variant]) -> list[Variant]:
        effort = self.spec.effort
        if not effort.mechanisms:
            return variants
        from dse._effort import suggest_knobs

        out = list(variants)
        for role in effort.nets:
            position = len(out) - 1 if role == "big" else 0
            if role == "little" and len(out) == 1:
                continue
            knobs = [knob for scope, mechanisms in applicable_knobs(out[position].net, effort.mechanisms, effort.scopes)
                     for knob in suggest_knobs(trial, mechanisms, scopes=(scope,), prefix=f"{role}.")]
            out[position] = dataclasses.replace(out[position], knobs=tuple(sorted(knobs)))
        return out

    def _threshold(self, trial: optuna.Trial, stages: list[int]) -> float:
        s = self.spec.search
        little = stages[0]
        mode = trial.suggest_categorical("threshold_mode", list(s.threshold_modes))
        if mode == "lambda":
            lam = trial.suggest_float("lambda", *s.lambda_range, log=True)
            correct = self.problem.correct["calib"]
            return static_threshold(self.problem.margin["calib"][little], correct[little], correct[stages[1]],
                                    lam).threshold
        if mode == "loss_budget":
            return self.budgets.threshold(little, stages[1], trial.suggest_int("loss_budget", 0, self.max_budget))
        return trial.suggest_float("threshold", *s.threshold_range)

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
