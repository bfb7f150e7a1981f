"""The search problem of one spec: an immutable score table, a pricer and an evaluator, plus on-demand scoring.

`CascadeProblem` is what trials, mechanisms and reports use: it reads rows off its table (`dse.core.table`), prices
with its pricer (`dse.core.pricer`) and evaluates with an evaluator bound to the table (`dse.core.evaluator`).
Scoring a variant on demand (`ensure`) replaces the table with a new one; carving and re-splitting return new
problems whose tables share nothing that changes.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

import costmodel
from dse.core.checks import priced_transforms
from dse.core.evaluator import SAFER_STEPS, Chain, Evaluation, Evaluator
from dse.core.pricer import Pricer, StageRule
from dse.core.results import Breakdown, Metrics
from dse.core.table import ScoreTable
from nets import Variant, VariantScores

CERTIFY = "certify"  # calibration rows kept aside to certify a loss guarantee (never searched on)
Builder = Callable[[list[Variant]], list[VariantScores]]  # scores variants not built yet


class CascadeProblem:
    """Everything a trial needs: the table of per-variant rows per split, the big net's index, the pricer, and a
    builder that scores variants the table does not hold yet (None: none can be added)."""

    def __init__(self, table: ScoreTable, big: int, pricer: Pricer, builder: Builder | None = None) -> None:
        self.big, self.pricer, self.builder = big, pricer, builder
        self.scoring_s = 0.0  # time spent scoring variants on demand (`ensure`)
        self._use(table)

    def _use(self, table: ScoreTable) -> None:
        self.table = table
        self.evaluator = Evaluator(table, self.pricer, self.big)

    @classmethod
    def from_scores(cls, scores: list[VariantScores], big: int, accelerator: costmodel.Accelerator,
                    technology: costmodel.Technology, priced_layers: str = "all",
                    rules: tuple[StageRule, ...] = (), builder: Builder | None = None) -> "CascadeProblem":
        """A problem over the variants' rows, pricing all layers or conv layers only, with the given stage rules."""
        return cls(ScoreTable.from_scores(scores), big, Pricer(accelerator, technology, priced_layers, rules),
                   builder)

    @classmethod
    def from_arrays(cls, variants: list[Variant], big: int, margin: dict[str, np.ndarray],
                    correct: dict[str, np.ndarray], accelerator: costmodel.Accelerator,
                    technology: costmodel.Technology, priced_layers: str = "all", rules: tuple[StageRule, ...] = (),
                    work: dict[str, dict[int, np.ndarray]] | None = None) -> "CascadeProblem":
        """A problem over given (V, N) arrays per split (e.g. rows computed elsewhere); see `ScoreTable.from_arrays`."""
        return cls(ScoreTable.from_arrays(variants, margin, correct, work), big,
                   Pricer(accelerator, technology, priced_layers, rules))

    # what the table holds, by split
    @property
    def variants(self) -> list[Variant]:
        """The variants, aligned with the arrays (a copy)."""
        return list(self.table.variants)

    @property
    def names(self) -> list[str]:
        """Variant display names, aligned with the arrays (a copy)."""
        return list(self.table.names)

    @property
    def applied(self) -> list[tuple[str, ...]]:
        """Per variant, the transforms its scoring applied (a copy)."""
        return list(self.table.applied)

    @property
    def margin(self) -> dict[str, np.ndarray]:
        """split -> (V, N) top-1 minus top-2 confidence (read-only)."""
        return {split: rows.margin for split, rows in self.table.splits.items()}

    @property
    def correct(self) -> dict[str, np.ndarray]:
        """split -> (V, N) correctness (read-only)."""
        return {split: rows.correct for split, rows in self.table.splits.items()}

    @property
    def work(self) -> dict[str, dict[int, np.ndarray]]:
        """split -> variant index -> executed share of its MACs per sample, for variants whose work varies."""
        return {split: dict(rows.work) for split, rows in self.table.splits.items()}

    @property
    def rows(self) -> dict[str, tuple[str, np.ndarray]]:
        """split -> (the split its rows were taken from, their indices) for carved or re-drawn splits."""
        return {split: (rows.source, rows.rows) for split, rows in self.table.splits.items() if rows.rows is not None}

    @property
    def accelerator(self) -> costmodel.Accelerator:
        return self.pricer.accelerator

    @property
    def technology(self) -> costmodel.Technology:
        return self.pricer.technology

    @property
    def priced_layers(self) -> str:
        return self.pricer.priced_layers

    def index(self, name: str) -> int:
        """Position of variant `name`."""
        return self.table.index(name)

    def confidence(self, criterion: str, split: str) -> np.ndarray:
        """(V, N) per-sample confidence of every variant under an exit criterion ('margin': the cached margins)."""
        return self.table.confidence(criterion, split)

    def stage_confidence(self, stages: list[int], criterion: str, split: str) -> np.ndarray:
        """(S, N) confidence of each stage under `criterion` (or one criterion per stage, '/'-joined)."""
        return self.table.stage_confidence(stages, criterion, split)

    # new problems
    def _with(self, table: ScoreTable, builder: Builder | None) -> "CascadeProblem":
        return CascadeProblem(table, self.big, self.pricer, builder)

    def carve(self, name: str, fraction: float, seed: int) -> "CascadeProblem":
        """The same problem with a seeded random `fraction` of the calibration rows moved to a new split `name`
        (e.g. rows kept aside to certify what the search chose on the others)."""
        return self._with(self.table.carve(name, fraction, seed), self.builder)

    def resplit(self, calib: np.ndarray, test: np.ndarray) -> "CascadeProblem":
        """The same variants with calib and test re-drawn from the pooled calib+test samples (indices into the pool);
        a carved problem's re-drawn rows take no more variants."""
        return self._with(self.table.resplit(calib, test), None if self.rows else self.builder)

    def ensure(self, variant: Variant) -> int:
        """Index of `variant`, scoring it first (through the cache) if the problem does not hold it yet."""
        if variant in self.table.variants:
            return self.table.variants.index(variant)
        if self.builder is None:
            raise KeyError(f"variant {variant.name} is not part of this problem")
        start = time.perf_counter()
        (scores,) = self.builder([variant])
        self.scoring_s += time.perf_counter() - start
        self._use(self.table.with_variant(scores))
        return len(self.table.variants) - 1

    # prices
    def price(self, index: int, accelerator: costmodel.Accelerator | None = None, after: int | None = None,
              widen: bool = True) -> costmodel.NetworkCost:
        """One stage's cost at its own bits, after stage `after` ran on the same input (if given; `widen` lets the
        optional stage rules apply)."""
        variants = self.table.variants
        return self.pricer.price(variants[index], accelerator, None if after is None else variants[after], widen)

    def stage_costs(self, stages: list[int], accelerator: costmodel.Accelerator | None = None,
                    reuse: bool = False) -> list[costmodel.NetworkCost]:
        """Cost of each stage of a cascade, in order, each after the one before."""
        return self.evaluator.costs(Chain(tuple(stages), accelerator, reuse))

    def priced_transforms(self, index: int) -> tuple[str, ...]:
        """The transforms pricing applies to variant `index`, read off what it prices (`dse.core.checks`)."""
        return priced_transforms(self.pricer, self.table, index)

    # metrics
    def evaluate(self, stages: list[int], thresholds: np.ndarray, split: str,
                 accelerator: costmodel.Accelerator | None = None, reuse: bool = False,
                 criterion: str = "margin") -> Evaluation:
        """Typed metrics of cascade `stages` for threshold vectors (P, S-1) on `split`."""
        return self.evaluator.evaluate(Chain(tuple(stages), accelerator, reuse, criterion), thresholds, split)

    def metrics(self, stages: list[int], thresholds: np.ndarray, split: str,
                accelerator: costmodel.Accelerator | None = None, reuse: bool = False,
                criterion: str = "margin") -> Metrics:
        """The typed metrics of one threshold vector (S-1,) on `split` (energy in joules)."""
        return self.point_metrics(stages, np.atleast_2d(thresholds), split, accelerator, reuse, criterion)[0]

    def point_metrics(self, stages: list[int], thresholds: np.ndarray, split: str,
                      accelerator: costmodel.Accelerator | None = None, reuse: bool = False,
                      criterion: str = "margin", chunk_cells: int = 2**24) -> list[Metrics]:
        """The typed metrics of threshold vectors (P, S-1) on `split`, evaluated in chunks of bounded memory."""
        return self.evaluator.point_metrics(Chain(tuple(stages), accelerator, reuse, criterion), thresholds, split,
                                            chunk_cells)

    def breakdowns(self, stages: list[int], thresholds: np.ndarray, split: str,
                   accelerator: costmodel.Accelerator | None = None, reuse: bool = False,
                   criterion: str = "margin", chunk_cells: int = 2**24) -> list[Breakdown]:
        """Expected energy per inference by component (J) and each stage's reach, per threshold vector."""
        return self.evaluator.breakdowns(Chain(tuple(stages), accelerator, reuse, criterion), thresholds, split,
                                         chunk_cells)

    def threshold_front(self, stages: list[int], accelerator: costmodel.Accelerator | None = None,
                        reuse: bool = False, split: str = "calib", criterion: str = "margin",
                        max_errors: int | None = None, beyond: int = 0) -> np.ndarray:
        """Threshold vectors (P, S-1) of the (energy, errors) Pareto front of a cascade on `split` (with
        `max_errors`, only its points of at most that many errors and the `beyond` next ones)."""
        return self.evaluator.threshold_front(Chain(tuple(stages), accelerator, reuse, criterion), split,
                                              max_errors, beyond)

    def safer_thresholds(self, stages: list[int], thresholds: np.ndarray, criterion: str = "margin",
                         split: str = "calib", steps: int = SAFER_STEPS) -> np.ndarray:
        """Threshold vectors from the safest of `thresholds` to passing every sample on (`Evaluator`)."""
        return self.evaluator.safer_thresholds(Chain(tuple(stages), criterion=criterion), thresholds, split, steps)
