"""Runtime-configurable nets (Tann et al. 2016): increment search, Eqs. 1-4 vs the simulated cascade, Algorithm 2,
and the storage comparison of Table 6. Pure numpy over cached per-sample rows; prices come from `costmodel`.

Stage i of an incremental net runs channel fraction f_i; in "reuse" mode it pays only for the channels added to
stage i-1 (`costmodel.increment_cost`). A sample exits at the first stage whose softmax margin reaches its threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Literal, Sequence

import numpy as np

import costmodel
from costmodel import UserError
from dse.core._exact import allowed_extra_errors
from dse.core.evaluate import evaluate_cascade, exit_stages

LayersAt = Callable[[float], Sequence[costmodel.LayerShape]]
# Penalty per extra error, in inferences of the whole cascade, swept from strict to lenient (threshold path).
PENALTIES = np.geomspace(1e3, 1e-2, 31)
SWEEPS = 2
# Tann 2016 Table 4: the four budget levels are the per-image energies of the four increments. The default stream
# visits them in this order, with rises (the controller jumps to the full net) and falls (it steps down).
DEFAULT_SCHEDULE = (3, 1, 2, 0, 2, 3)


class IncrementSearchError(UserError):
    """Golden sizes, increments or a budget scenario the search or the controller cannot use."""


# ---- pricing -------------------------------------------------------------------------------------------------------

def stage_costs(layers_at: LayersAt, fractions: Sequence[float], acc: costmodel.Accelerator,
                tech: costmodel.Technology | None = None,
                mode: Literal["reuse", "recompute"] = "reuse") -> list[costmodel.NetworkCost]:
    """Price of each stage: stage 1 runs f_1 in full, stage i adds f_i to f_{i-1} (`increment_cost`)."""
    costs = [costmodel.network_cost(layers_at(fractions[0]), acc, tech)]
    for prev, width in zip(fractions, fractions[1:]):
        costs.append(costmodel.increment_cost(layers_at(prev), layers_at(width), acc, tech, mode))
    return costs


def increment_energy_table(layers_at: LayersAt, widths: Sequence[float], acc: costmodel.Accelerator,
                           tech: costmodel.Technology | None = None,
                           mode: Literal["reuse", "recompute"] = "reuse") -> np.ndarray:
    """(F+1, F) energy (pJ) of running width j after width i; row F: width j from scratch; NaN where j <= i."""
    n = len(widths)
    table = np.full((n + 1, n), np.nan)
    for j, width in enumerate(widths):
        table[n, j] = costmodel.network_cost(layers_at(width), acc, tech).energy_pj
        for i in range(j):
            table[i, j] = costmodel.increment_cost(layers_at(widths[i]), layers_at(width), acc, tech, mode).energy_pj
    return table


# ---- Eqs. 1-3 and the exact cascade --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CascadeEstimate:
    """Expected stage cost and accuracy per threshold vector (B,): Tann's Eqs. 1-3 and the exact simulated cascade."""

    analytic_cost: np.ndarray
    analytic_accuracy: np.ndarray
    simulated_cost: np.ndarray
    simulated_accuracy: np.ndarray

    @property
    def cost_gap(self) -> np.ndarray:
        """Analytic minus simulated expected cost."""
        return self.analytic_cost - self.simulated_cost

    @property
    def accuracy_gap(self) -> np.ndarray:
        """Analytic minus simulated accuracy."""
        return self.analytic_accuracy - self.simulated_accuracy


def pass_rates(margin: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(B, S) P(SM_i >= theta_i | f_i) per stage, P := 1 at the last stage.

    Eq. 2 splits this over correct and wrong answers; with empirical conditionals it is exactly the pass rate.
    """
    thresholds = np.atleast_2d(thresholds)
    rates = (margin[None, :-1, :] >= thresholds[:, :, None]).mean(axis=2)
    return np.concatenate([rates, np.ones((len(thresholds), 1))], axis=1)


def analytic_cost(margin: np.ndarray, stage_cost: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Eq. 1, E = sum_i [sum_{j<=i} c_j] (P_i - P_{i-1}), for B threshold vectors.

    With c_j = f_j this is the paper's expected fraction; with reuse-mode energies, the expected energy. It treats
    the stage pass events as nested (a sample passing stage i-1 would pass stage i), which the cascade need not obey.
    """
    rates = pass_rates(margin, thresholds)
    exit_probability = np.diff(rates, axis=1, prepend=0.0)
    return exit_probability @ np.cumsum(stage_cost)


def analytic_accuracy(margin: np.ndarray, correct: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Eq. 3, T_i = P(SM_i >= theta_i, f_i correct) + P(SM_i < theta_i) T_{i+1}, T_N = P(f_N correct).

    The paper prints the first term as P(SM_i < theta_i | f_i correct), which gives 0 accuracy at theta = 0; the
    joint probability of an accepted, correct answer is the reading that makes T_1 an accuracy. Stages are treated
    as independent: the rejection at stage i does not condition stage i+1.
    """
    thresholds = np.atleast_2d(thresholds)
    passes = margin[None, :-1, :] >= thresholds[:, :, None]  # (B, S-1, n)
    accepted_correct = (passes & correct[None, :-1, :]).mean(axis=2)
    rejected = 1.0 - passes.mean(axis=2)
    accuracy = np.full(len(thresholds), correct[-1].mean())
    for stage in range(margin.shape[0] - 2, -1, -1):
        accuracy = accepted_correct[:, stage] + rejected[:, stage] * accuracy
    return accuracy


def compare_estimate(margin: np.ndarray, correct: np.ndarray, stage_cost: np.ndarray,
                     thresholds: np.ndarray) -> CascadeEstimate:
    """Eqs. 1-3 beside the exact cascade on the same rows: margin, correct (S, n); thresholds (B, S-1) or (S-1,)."""
    stage_cost = np.asarray(stage_cost, dtype=np.float64)
    simulated = evaluate_cascade(margin, correct, stage_cost, np.zeros_like(stage_cost), thresholds)
    return CascadeEstimate(analytic_cost(margin, stage_cost, thresholds),
                           analytic_accuracy(margin, correct, thresholds), simulated.energy_pj, simulated.accuracy)


def ideal_expected_fraction(fractions: Sequence[float], accuracies: Sequence[float]) -> float:
    """Eq. 1 under the paper's sweep assumption that margins separate right from wrong: P_i = P(f_i correct)."""
    rates = np.r_[np.asarray(accuracies[:-1], dtype=np.float64), 1.0]
    return float(np.diff(rates, prepend=0.0) @ np.cumsum(fractions))


# ---- threshold tuning and the increment search ---------------------------------------------------------------------

def _stage_options(stage: int, margin: np.ndarray, correct: np.ndarray, cumulative: np.ndarray,
                   thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct threshold of one stage, the others fixed, with the cascade's total cost and errors under each.

    Candidates: +inf (the stage accepts nothing), then each distinct margin of the samples reaching the stage,
    descending (accepting one more tie group each time). Exact, by one sort.
    """
    n = margin.shape[1]
    rejecting = thresholds.copy()
    rejecting[stage] = np.inf
    exits = exit_stages(margin, rejecting[None])[0]
    wrong = ~correct
    reach = exits > stage
    values = margin[stage, reach]
    order = np.argsort(-values, kind="stable")
    ordered = values[order]
    tie_ends = np.flatnonzero(np.diff(np.r_[ordered, -np.inf]))  # last index of each group of equal margins
    gain_cost = (cumulative[stage] - cumulative[exits])[reach][order]
    gain_errors = (wrong[stage].astype(np.int64) - wrong[exits, np.arange(n)])[reach][order]
    cost = cumulative[exits].sum() + np.r_[0.0, np.cumsum(gain_cost)[tie_ends]]
    errors = wrong[exits, np.arange(n)].sum() + np.r_[0, np.cumsum(gain_errors)[tie_ends]]
    return np.r_[np.inf, ordered[tie_ends]], cost, errors


def _pick(cost: np.ndarray, errors: np.ndarray, allowed_errors: float) -> int:
    """Least cost within the error allowance (then fewest errors); else fewest errors (then least cost)."""
    feasible = errors <= allowed_errors
    if feasible.any():
        order = np.lexsort((errors, cost))
        return int(order[feasible[order]][0])
    return int(np.lexsort((cost, errors))[0])


def threshold_path(margin: np.ndarray, correct: np.ndarray, stage_cost: np.ndarray) -> np.ndarray:
    """(K, S-1) distinct threshold vectors tracing cost against errors: exact coordinate descent on
    cost + penalty x errors for each penalty, strict to lenient."""
    cumulative = np.cumsum(stage_cost) / np.sum(stage_cost)
    thresholds = np.full(margin.shape[0] - 1, np.inf)
    path = []
    for penalty in PENALTIES:
        for _ in range(SWEEPS):
            for stage in range(len(thresholds)):
                candidates, cost, errors = _stage_options(stage, margin, correct, cumulative, thresholds)
                thresholds[stage] = candidates[np.argmin(cost + penalty * errors)]
        path.append(thresholds.copy())
    return np.unique(np.array(path), axis=0)


def tune_thresholds(margin: np.ndarray, correct: np.ndarray, stage_energy: np.ndarray, reference_accuracy: float,
                    max_loss_pct: float) -> np.ndarray:
    """Least-energy thresholds (S-1,) whose accuracy loss vs `reference_accuracy` is <= max_loss_pct on these rows.

    Exact constrained coordinate steps from every point of the penalty path; when nothing meets the limit, the
    least-loss thresholds found. Exact for two stages.
    """
    n = margin.shape[1]
    allowed_errors = n * (1.0 - reference_accuracy + max_loss_pct / 100.0) + 1e-9
    cumulative = np.cumsum(stage_energy)
    starts = threshold_path(margin, correct, stage_energy)
    for thresholds in starts:
        for _ in range(SWEEPS):
            for stage in range(len(thresholds)):
                candidates, cost, errors = _stage_options(stage, margin, correct, cumulative, thresholds)
                thresholds[stage] = candidates[_pick(cost, errors, allowed_errors)]
    result = evaluate_cascade(margin, correct, stage_energy, np.zeros_like(stage_energy), starts)
    return starts[_pick(result.energy_pj, np.round(n * (1.0 - result.accuracy)), allowed_errors)]


@dataclass(frozen=True)
class IncrementPoint:
    """One incremental configuration on one split: its thresholds, price, accuracy, and Eq. 1-3 estimates."""

    fractions: tuple[float, ...]
    thresholds: tuple[float, ...]
    energy_pj: float
    energy_saving_pct: float  # vs the full net run alone
    accuracy: float
    accuracy_loss_pct: float  # vs the reference (golden full net) accuracy
    feasible: bool
    ideal_fraction: float  # Eq. 1 with perfect margins: how the paper ranks N and F
    analytic_fraction: float  # Eq. 1 at these thresholds (c_j = f_j)
    simulated_fraction: float  # mean sum of f_j over the stages each sample ran
    analytic_accuracy: float  # Eq. 3


def increment_point(fractions: Sequence[float], margin: np.ndarray, correct: np.ndarray, stage_energy: np.ndarray,
                    thresholds: np.ndarray, full_energy_pj: float, reference_accuracy: float,
                    max_loss_pct: float) -> IncrementPoint:
    """Evaluate one configuration exactly and with Eqs. 1-3: margin, correct (S, n), stage_energy (S,)."""
    fractions_array = np.asarray(fractions, dtype=np.float64)
    result = evaluate_cascade(margin, correct, stage_energy, np.zeros_like(stage_energy), thresholds)
    estimate = compare_estimate(margin, correct, fractions_array, thresholds)
    accuracy, energy = float(result.accuracy[0]), float(result.energy_pj[0])
    loss_pct = 100.0 * (reference_accuracy - accuracy)
    n = correct.shape[1]
    extra = round(reference_accuracy * n) - round(accuracy * n)  # both accuracies are counts over the same n rows
    return IncrementPoint(
        tuple(float(f) for f in fractions), tuple(float(t) for t in thresholds), energy,
        float(100.0 * (1.0 - energy / full_energy_pj)), accuracy, loss_pct,
        extra <= allowed_extra_errors(max_loss_pct, n),
        ideal_expected_fraction(fractions_array, correct.mean(axis=1)), float(estimate.analytic_cost[0]),
        float(estimate.simulated_cost[0]), float(estimate.analytic_accuracy[0]))


def check_golden_widths(widths: Sequence[float], n_increments: tuple[int, int]) -> None:
    """Golden widths strictly increasing in (0, 1] and ending at 1; enough of them for the largest N."""
    listed = ", ".join(f"{w:g}" for w in widths)
    if not widths or any(b <= a for a, b in zip(widths, widths[1:])) or widths[0] <= 0 or widths[-1] != 1:
        raise IncrementSearchError(f"golden widths must increase strictly in (0, 1] and end at 1, "
                                   f"got {listed or 'none'}")
    low, high = n_increments
    if not 1 <= low <= high:
        raise IncrementSearchError(f"the increment count range must satisfy 1 <= low <= high, got {low}..{high}")
    if high > len(widths):
        raise IncrementSearchError(f"N = {high} increments need {high} golden sizes, only {len(widths)} available "
                                   f"({listed})")


def search_increments(widths: Sequence[float], margin: np.ndarray, correct: np.ndarray, energy_table: np.ndarray,
                      max_loss_pct: float, n_increments: tuple[int, int] = (2, 5)) -> list[IncrementPoint]:
    """Best thresholds of every ordered choice of N fractions from the golden widths, ending at 1 (§4.2, Eq. 4).

    margin, correct: (F, n) golden-model rows aligned with `widths`; energy_table from `increment_energy_table`.
    Returns one point per fraction choice: feasible ones first, by energy.
    """
    check_golden_widths(widths, n_increments)
    full = len(widths) - 1
    reference = float(correct[full].mean())
    points = []
    for count in range(n_increments[0], n_increments[1] + 1):
        for smaller in combinations(range(full), count - 1):
            stages = [*smaller, full]
            energy = energy_table[[len(widths), *stages[:-1]], stages]
            thresholds = tune_thresholds(margin[stages], correct[stages], energy, reference, max_loss_pct)
            points.append(increment_point([widths[s] for s in stages], margin[stages], correct[stages], energy,
                                          thresholds, energy_table[len(widths), full], reference, max_loss_pct))
    return sorted(points, key=lambda p: (not p.feasible, p.energy_pj))


# ---- Algorithm 2: the runtime controller ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ControllerTrace:
    """Per input of the stream: the budget, the capacity (stage index) the controller chose, its energy, correctness."""

    budget_pj: np.ndarray
    capacity: np.ndarray
    energy_pj: np.ndarray
    correct: np.ndarray

    @property
    def violations(self) -> int:
        """Inputs whose energy exceeded the budget in force."""
        return int((self.energy_pj > self.budget_pj).sum())

    @property
    def accuracy(self) -> float:
        """Accuracy over the stream."""
        return float(self.correct.mean())


def budget_schedule(capacity_energy_pj: np.ndarray, levels: Sequence[int] = DEFAULT_SCHEDULE,
                    segment: int = 250) -> np.ndarray:
    """A per-input budget trace: the energy of capacity `levels[k]`, held for `segment` inputs each (Table 4 levels)."""
    if segment < 1 or any(not 0 <= k < len(capacity_energy_pj) for k in levels) or not levels:
        raise IncrementSearchError(f"budget levels must be capacities 0..{len(capacity_energy_pj) - 1} and the "
                                   f"segment >= 1, got levels {list(levels)}, segment {segment}")
    return np.repeat(np.asarray(capacity_energy_pj, dtype=np.float64)[list(levels)], segment)


def simulate_controller(capacity_energy_pj: np.ndarray, correct: np.ndarray, budget_pj: np.ndarray) -> ControllerTrace:
    """Algorithm 2 over a stream: on a budget rise jump to the full net, otherwise step capacity down by one per input
    while the last input's energy exceeds the budget.

    capacity_energy_pj (S,) increasing: energy of one input at each capacity; correct (S, n): per-sample correctness
    at each capacity, input t of the stream being sample t mod n; budget_pj (T,) the budget in force at each input.
    """
    energy = np.asarray(capacity_energy_pj, dtype=np.float64)
    if np.any(np.diff(energy) <= 0):
        raise IncrementSearchError(f"capacity energies must increase with capacity, got {energy.tolist()}")
    budget = np.asarray(budget_pj, dtype=np.float64)
    starts = np.r_[0, np.flatnonzero(np.diff(budget)) + 1]
    ends = np.r_[starts[1:], len(budget)]
    capacity = np.empty(len(budget), dtype=np.int64)
    top = len(energy) - 1
    for first, end in zip(starts, ends):
        settle = max(int(np.searchsorted(energy, budget[first], side="right")) - 1, 0)  # largest capacity in budget
        if first == 0 or budget[first] > budget[first - 1]:
            start = top
        else:
            previous = capacity[first - 1]
            start = max(previous - int(energy[previous] > budget[first]), 0)
        capacity[first:end] = np.maximum(start - np.arange(end - first), min(start, settle))
    samples = np.arange(len(budget)) % correct.shape[1]
    return ControllerTrace(budget, capacity, energy[capacity], correct[capacity, samples])


# ---- Table 6: weight storage ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StorageComparison:
    """Weight bytes of the full net, and what storing the smaller stages adds: classifiers only vs golden models."""

    full_bytes: float
    incremental_extra_bytes: float
    golden_extra_bytes: float

    @property
    def incremental_extra_pct(self) -> float:
        """Extra storage of the incremental net (one output classifier per earlier stage), % of the full net."""
        return 100.0 * self.incremental_extra_bytes / self.full_bytes

    @property
    def golden_extra_pct(self) -> float:
        """Extra storage of keeping every smaller golden model (Big/Little style), % of the full net."""
        return 100.0 * self.golden_extra_bytes / self.full_bytes


def storage_comparison(layers_at: LayersAt, fractions: Sequence[float], acc: costmodel.Accelerator,
                       tech: costmodel.Technology | None = None) -> StorageComparison:
    """Table 6 from `NetworkCost.weight_bytes`; `layers_at` must include the classifier as its last layer."""
    def weight_bytes(layers: Sequence[costmodel.LayerShape]) -> float:
        return costmodel.network_cost(layers, acc, tech).weight_bytes

    smaller = fractions[:-1]
    return StorageComparison(weight_bytes(layers_at(fractions[-1])),
                             sum(weight_bytes(layers_at(f)[-1:]) for f in smaller),
                             sum(weight_bytes(layers_at(f)) for f in smaller))

