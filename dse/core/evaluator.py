"""The evaluator: a cascade (stages, accelerator, reuse, criterion) and threshold vectors on a score table, priced by
a pricer, to typed metrics in SI units (joules, seconds, bytes) with integer error counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import costmodel
from dse.core._batch import BatchEvaluator, Outcomes
from dse.core._exact import front
from dse.core.evaluate import evaluate_cascade, exit_stages
from dse.core.pricer import Pricer
from dse.core.results import ENERGY_PARTS, PJ, Breakdown, Metrics
from dse.core.table import ScoreTable

SAFER_STEPS = 16  # safer candidates a loss guarantee adds beyond a trial's front (`safer_thresholds`)


@dataclass(frozen=True)
class Chain:
    """A cascade to evaluate: stage indices into the table (the last always answers), the accelerator (None: the
    pricer's), whether a stage may reuse the work of the one before (optional stage rules), and the exit criterion
    ('/'-joined: one per stage)."""

    stages: tuple[int, ...]
    accelerator: costmodel.Accelerator | None = None
    reuse: bool = False
    criterion: str = "margin"


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Metrics of P threshold vectors on one split, each an array of length P (SI units; error counts exact)."""

    accuracy: np.ndarray
    errors: np.ndarray
    worse: np.ndarray  # wrong where the big net is right
    better: np.ndarray  # right where the big net is wrong
    extra_errors: np.ndarray  # errors beyond the big net's: limits are compared exactly on it
    accuracy_loss_pct: np.ndarray
    accuracy_loss_se_pct: np.ndarray
    energy_j: np.ndarray
    energy_saving_pct: np.ndarray
    latency_s: np.ndarray
    storage_bytes: np.ndarray
    last_stage_fraction: np.ndarray

    def metrics(self, samples: int) -> list[Metrics]:
        """One Metrics per threshold vector."""
        return [Metrics(accuracy=float(self.accuracy[i]), errors=int(self.errors[i]),
                        extra_errors=int(self.extra_errors[i]), samples=samples,
                        accuracy_loss_pct=float(self.accuracy_loss_pct[i]),
                        accuracy_loss_se_pct=float(self.accuracy_loss_se_pct[i]), energy_j=float(self.energy_j[i]),
                        energy_saving_pct=float(self.energy_saving_pct[i]), latency_s=float(self.latency_s[i]),
                        storage_bytes=float(self.storage_bytes[i]),
                        last_stage_fraction=float(self.last_stage_fraction[i])) for i in range(len(self.accuracy))]


class Evaluator:
    """Evaluates cascades on one immutable table with one pricer; keeps the set-up of the last two cascades' fast
    batch path (a trial reads one cascade on two splits)."""

    def __init__(self, table: ScoreTable, pricer: Pricer, big: int) -> None:
        self.table, self.pricer, self.big = table, pricer, big
        self._batches: dict[tuple, BatchEvaluator] = {}

    def costs(self, chain: Chain) -> list[costmodel.NetworkCost]:
        """Each stage's cost, in order, each after the one before."""
        return self.pricer.chain([self.table.variants[s] for s in chain.stages], chain.accelerator, chain.reuse)

    def varying(self, chain: Chain, split: str, costs: list[costmodel.NetworkCost]) -> dict[int, costmodel.SampleCosts]:
        """Per-sample prices of the stages whose work varies per sample (knobs), by position in the chain."""
        work = self.table.splits[split].work
        return {row: self.pricer.per_sample(self.table.variants[stage], cost, work[stage], chain.accelerator)
                for row, (stage, cost) in enumerate(zip(chain.stages, costs)) if stage in work}

    def stage_arrays(self, chain: Chain, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Energy (pJ) and latency per stage: (S,), or (S, N) when a stage's work varies per sample."""
        costs = self.costs(chain)
        return self._arrays(costs, self.varying(chain, split, costs), split)

    def _arrays(self, costs: list[costmodel.NetworkCost], varying: dict[int, costmodel.SampleCosts],
                split: str) -> tuple[np.ndarray, np.ndarray]:
        """`stage_arrays` from the stages' costs and the per-sample prices of those whose work varies."""
        if not varying:
            return np.array([c.energy_pj for c in costs]), np.array([c.latency_s for c in costs])
        n = self.table.splits[split].samples
        energy, latency = np.empty((len(costs), n)), np.empty((len(costs), n))
        for row, cost in enumerate(costs):
            if row in varying:
                energy[row], latency[row] = varying[row].energy_pj, varying[row].latency_s
            else:
                energy[row], latency[row] = cost.energy_pj, cost.latency_s
        return energy, latency

    def outcomes(self, chain: Chain, thresholds: np.ndarray, split: str,
                 costs: list[costmodel.NetworkCost]) -> Outcomes:
        """Errors, errors where the big net is right, mean energy (pJ) and latency, reach: the fast batch path for
        stages priced the same for every sample (`dse.core._batch`)."""
        energy, latency = tuple(c.energy_pj for c in costs), tuple(c.latency_s for c in costs)
        key = (chain.criterion, chain.stages, split, energy, tuple(np.nan_to_num(latency, nan=-1.0)))
        if key not in self._batches:
            if len(self._batches) >= 2:
                self._batches.pop(next(iter(self._batches)))
            correct = self.table.splits[split].correct
            self._batches[key] = BatchEvaluator(
                self.table.stage_confidence(list(chain.stages), chain.criterion, split), correct[list(chain.stages)],
                correct[self.big], np.array(energy), np.array(latency))
        return self._batches[key].outcomes(thresholds)

    def evaluate(self, chain: Chain, thresholds: np.ndarray, split: str) -> Evaluation:
        """Metrics of `chain` for threshold vectors (P, S-1) on `split`, a stage answering when its confidence
        reaches its threshold."""
        stages = list(chain.stages)
        correct = self.table.splits[split].correct
        big_correct = correct[self.big]
        n = big_correct.size
        big_errors = int(n - big_correct.sum())
        costs = self.costs(chain)
        varying = self.varying(chain, split, costs)
        if not varying:  # every stage costs the same for every sample: the fast path
            out = self.outcomes(chain, np.atleast_2d(thresholds), split, costs)
            errors, worse = out.errors, out.worse
            energy_pj, latency_s, reach = out.energy, out.latency, out.reach
            better = worse - (errors - big_errors)
            # the paired difference (big right) - (cascade right) is +1 on `worse` samples, -1 on `better` ones
            mean = (worse - better) / n
            loss_sd = np.sqrt(np.maximum((worse + better) / n - mean ** 2, 0.0))
        else:
            energy, latency = self._arrays(costs, varying, split)
            result = evaluate_cascade(self.table.stage_confidence(stages, chain.criterion, split), correct[stages],
                                      energy, latency, thresholds)
            final = correct[stages][result.exit_stage, np.arange(n)].astype(bool)  # (P, N)
            big_right = big_correct[None, :].astype(bool)
            errors = n - final.sum(axis=1).astype(np.int64)
            worse = (big_right & ~final).sum(axis=1)
            better = (~big_right & final).sum(axis=1)
            energy_pj, latency_s, reach = result.energy_pj, result.latency_s, result.reach_fraction
            loss_sd = (big_right.astype(np.float64) - final).std(axis=1)
        accuracy = 1.0 - errors / n
        big_energy = self.pricer.price(self.table.variants[self.big], chain.accelerator).energy_pj
        storage = self.pricer.stored_bytes([self.table.variants[s] for s in stages], chain.accelerator)
        return Evaluation(accuracy=accuracy, errors=errors, worse=worse, better=better,
                          extra_errors=errors - big_errors,
                          accuracy_loss_pct=100.0 * (big_correct.mean() - accuracy),
                          accuracy_loss_se_pct=100.0 * loss_sd / np.sqrt(n), energy_j=energy_pj * PJ,
                          energy_saving_pct=100.0 * (1.0 - energy_pj / big_energy), latency_s=latency_s,
                          storage_bytes=np.full(len(accuracy), storage), last_stage_fraction=reach[:, -1])

    def point_metrics(self, chain: Chain, thresholds: np.ndarray, split: str,
                      chunk_cells: int = 2**24) -> list[Metrics]:
        """The typed metrics of threshold vectors (P, S-1) on `split`, evaluated in chunks of bounded memory."""
        n = self.table.splits[split].samples
        work = self.table.splits[split].work
        fast = not any(stage in work for stage in chain.stages)  # bounded memory at any batch size
        step = max(len(thresholds), 1) if fast else max(1, chunk_cells // max(n * len(chain.stages), 1))
        out: list[Metrics] = []
        for start in range(0, len(thresholds), step):
            out += self.evaluate(chain, thresholds[start:start + step], split).metrics(n)
        return out

    def breakdowns(self, chain: Chain, thresholds: np.ndarray, split: str,
                   chunk_cells: int = 2**24) -> list[Breakdown]:
        """Expected energy per inference by component (J) and each stage's reach, for threshold vectors (P, S-1):
        the sum over stages of the samples reaching it times its cost components (per sample for stages whose work
        varies), the vectors in chunks of bounded memory."""
        costs = self.costs(chain)
        varying = self.varying(chain, split, costs)
        if not varying:  # every stage costs the same for every sample: each stage's reach prices it
            reach = self.outcomes(chain, thresholds, split, costs).reach
            return _breakdowns(reach, {part: reach @ np.array([getattr(c, f"{part}_pj") for c in costs])
                                       for part in ENERGY_PARTS})
        confidence = self.table.stage_confidence(list(chain.stages), chain.criterion, split)
        step = max(1, chunk_cells // max(confidence.size, 1))
        out: list[Breakdown] = []
        for start in range(0, len(thresholds), step):
            answered = exit_stages(confidence, thresholds[start:start + step])  # (P, N)
            reach = np.stack([(answered >= row).mean(axis=1) for row in range(len(costs))], axis=1)  # (P, S)
            parts = {part: np.zeros(len(answered)) for part in ENERGY_PARTS}
            for row, cost in enumerate(costs):
                for part in ENERGY_PARTS:
                    if row in varying:
                        parts[part] += (getattr(varying[row], f"{part}_pj")[None, :] * (answered >= row)).mean(axis=1)
                    else:
                        parts[part] += reach[:, row] * getattr(cost, f"{part}_pj")
            out += _breakdowns(reach, parts)
        return out

    def threshold_front(self, chain: Chain, split: str = "calib", max_errors: int | None = None,
                        beyond: int = 0) -> np.ndarray:
        """Threshold vectors (P, S-1) of the exact (energy, errors) Pareto front of a cascade on `split`, over every
        threshold vector (per-sample prices included); fronts of 4 stages and more are approximate (`_exact`). With
        `max_errors`, only its points of at most that many errors and the `beyond` next ones (`_exact.front`)."""
        energy, _ = self.stage_arrays(chain, split)
        stages = list(chain.stages)
        return front(self.table.stage_confidence(stages, chain.criterion, split),
                     self.table.splits[split].correct[stages], energy, max_errors=max_errors, beyond=beyond).thresholds

    def safer_thresholds(self, chain: Chain, thresholds: np.ndarray, split: str = "calib",
                         steps: int = SAFER_STEPS) -> np.ndarray:
        """Threshold vectors (steps, S-1) from the safest of `thresholds` (the one passing most `split` samples on)
        to passing every sample on to the last stage, in each stage's share of samples passed on (quadratic steps,
        finer near the front): candidates that a loss guarantee can certify when even the front's safest point
        loses too much on new rows."""
        if thresholds.shape[1] == 0 or len(thresholds) == 0:
            return np.zeros((0, thresholds.shape[1]))
        ordered = np.sort(self.table.stage_confidence(list(chain.stages[:-1]), chain.criterion, split), axis=1)
        n = ordered.shape[1]
        passed = np.stack([np.searchsorted(row, thresholds[:, i], side="left") for i, row in enumerate(ordered)], 1)
        start = passed[np.argmax(passed.sum(axis=1))] / n  # (S-1,) share passed on by the safest vector
        step = (np.arange(1, steps + 1)[:, None] / steps) ** 2  # denser near the front, where the cheap ones are
        shares = start[None, :] + step * (1 - start[None, :])  # (steps, S-1)
        index = np.ceil(shares * n).astype(np.int64)
        top = np.nextafter(ordered[:, -1], np.inf)  # above every sample: all passed on
        safer = np.where(index < n, np.take_along_axis(ordered, np.minimum(index, n - 1).T, axis=1).T, top[None, :])
        seen = {tuple(row) for row in thresholds.tolist()}
        fresh = [row for row in dict.fromkeys(tuple(row) for row in safer.tolist()) if row not in seen]
        return np.array(fresh, dtype=np.float64).reshape(len(fresh), thresholds.shape[1])


def _breakdowns(reach: np.ndarray, parts_pj: dict[str, np.ndarray]) -> list[Breakdown]:
    """One Breakdown per row of `reach` (P, S) from per-component energies (P,) in pJ."""
    return [Breakdown({part: float(parts_pj[part][p]) * PJ for part in ENERGY_PARTS},
                      tuple(float(r) for r in reach[p])) for p in range(len(reach))]


