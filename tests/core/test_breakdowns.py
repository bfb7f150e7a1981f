"""Batched energy breakdowns (one pricing, all threshold vectors at once, in chunks) against the obvious way: walk every
sample through the cascade and add up what each stage it reaches costs."""

from __future__ import annotations

import numpy as np
import pytest

import dse
from costmodel import Accelerator, load_technology
from dse.core.results import ENERGY_PARTS, PJ
from nets import SplitScores, Variant, VariantScores, scores_from_logits

ACC = Accelerator(sram_bytes=16 * 1024, partition=(0.25, 0.5, 0.25), bits=16)


def problem(rng: np.random.Generator, varying: bool) -> dse.CascadeProblem:
    """Mini 7, LeNet at 8 bits, LeNet: random logits; the middle stage's work varies per sample when `varying`."""
    labels = rng.integers(0, 10, 40)
    made = []
    for i, variant in enumerate([Variant("mini7"), Variant("lenet", bits=8), Variant("lenet")]):
        splits = {}
        for split, rows in (("calib", slice(0, 20)), ("test", slice(20, 40))):
            scored = scores_from_logits(rng.normal(size=(20, 10)) * 3, labels[rows])
            if varying and i == 1:
                ops = rng.uniform(0.2, 1.0, 20) * variant.architecture.macs(variant.width)
                scored = SplitScores(scored.prediction, scored.correct, scored.margin, scored.scores, ops)
            splits[split] = scored
        made.append(VariantScores(variant, f"k{i}", splits))
    return dse.CascadeProblem.from_scores(made, 2, ACC, load_technology())


def by_sample(cascade: dse.CascadeProblem, stages: list[int], thresholds: np.ndarray, split: str) -> dict[str, float]:
    """The slow reference: each sample pays each stage it reaches (its own cost when the stage's work varies)."""
    priced = cascade.stage_costs(stages, ACC)
    margin = cascade.confidence("margin", split)[stages]
    n = margin.shape[1]
    totals = dict.fromkeys(ENERGY_PARTS, 0.0)
    for i in range(n):
        for row, (stage, cost) in enumerate(zip(stages, priced)):
            work = cascade.work.get(split, {})
            per_sample = (cascade.pricer.per_sample(cascade.variants[stage], cost, work[stage], ACC)
                          if stage in work else None)
            for part in ENERGY_PARTS:
                totals[part] += (getattr(per_sample, f"{part}_pj")[i] if per_sample is not None
                                 else getattr(cost, f"{part}_pj"))
            if row == len(stages) - 1 or margin[row, i] >= thresholds[row]:
                break
    return {part: value / n * PJ for part, value in totals.items()}


@pytest.mark.parametrize("varying", [False, True])
@pytest.mark.parametrize("chunk_cells", [2**24, 1, 45])
def test_batched_breakdowns_equal_the_sample_by_sample_sum(varying: bool, chunk_cells: int) -> None:
    rng = np.random.default_rng(int(varying) * 7 + chunk_cells)
    cascade = problem(rng, varying)
    stages = [0, 1, 2]
    thresholds = np.r_[rng.uniform(0, 1, (9, 2)), [[np.inf, np.inf], [0.0, 0.0]]]
    for split in ("calib", "test"):
        got = cascade.breakdowns(stages, thresholds, split, ACC, chunk_cells=chunk_cells)
        assert len(got) == len(thresholds)
        for vector, breakdown in zip(thresholds, got):
            expected = by_sample(cascade, stages, vector, split)
            assert breakdown.energy_j == pytest.approx(expected, rel=1e-12, abs=1e-24)
            reached = np.ones(20, bool)
            for row, share in enumerate(breakdown.stage_reach):
                assert share == reached.mean()
                if row < 2:
                    reached &= cascade.margin[split][stages[row]] < vector[row]
