"""A resplit problem (Park's protocol halves) that scores a variant on demand gets that variant's re-drawn rows, and
leaves the problem it was drawn from as it was (an 8-bit exit first drawn by the search on a half once took the
unsplit rows: wrong numbers, then an index error on the next half)."""

from __future__ import annotations

import numpy as np

import dse
from costmodel import Accelerator, load_technology
from nets import Variant, VariantScores, scores_from_logits

ACC = Accelerator(sram_bytes=16 * 1024, partition=(0.25, 0.5, 0.25), bits=16)
VARIANTS = [Variant("mini7"), Variant("lenet", bits=8), Variant("lenet")]


def scored(variant: Variant, seed: int) -> VariantScores:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, 60)
    return VariantScores(variant, f"k{seed}", {split: scores_from_logits(rng.normal(size=(30, 10)), labels[rows])
                                               for split, rows in (("calib", slice(0, 30)), ("test", slice(30, 60)))})


def test_a_variant_scored_on_a_resplit_problem_gets_its_redrawn_rows() -> None:
    every = {v: scored(v, i) for i, v in enumerate(VARIANTS)}
    full = dse.CascadeProblem.from_scores(list(every.values()), 2, ACC, load_technology())
    lazy = dse.CascadeProblem.from_scores([every[VARIANTS[0]], every[VARIANTS[2]]], 1, ACC, load_technology(),
                                          builder=lambda variants: [every[v] for v in variants])
    rng = np.random.default_rng(7)
    for _ in range(2):  # two halvings in turn, as the protocol runs them
        order = rng.permutation(60)
        calib, test = np.sort(order[:30]), np.sort(order[30:])
        half = lazy.resplit(calib, test)
        index = half.ensure(VARIANTS[1])
        reference = full.resplit(calib, test)  # the slow, obvious way: scored before the split was drawn
        for split in ("calib", "test"):
            assert np.array_equal(half.margin[split][index], reference.margin[split][1])
            assert np.array_equal(half.correct[split][index], reference.correct[split][1])
            assert np.array_equal(half.confidence("entropy", split)[index], reference.confidence("entropy", split)[1])
        assert lazy.names == ["mini7", "lenet"] and lazy.margin["calib"].shape == (2, 30)  # the source unchanged


def test_a_variant_scored_on_a_carved_problem_gets_its_rows_and_leaves_the_source_alone() -> None:
    every = {v: scored(v, i) for i, v in enumerate(VARIANTS)}
    full = dse.CascadeProblem.from_scores(list(every.values()), 2, ACC, load_technology())
    lazy = dse.CascadeProblem.from_scores([every[VARIANTS[0]], every[VARIANTS[2]]], 1, ACC, load_technology(),
                                          builder=lambda variants: [every[v] for v in variants])
    carved = lazy.carve("certify", 0.5, seed=3)
    index = carved.ensure(VARIANTS[1])
    reference = full.carve("certify", 0.5, seed=3)  # scored before the rows were carved
    for split in ("calib", "certify", "test"):
        assert np.array_equal(carved.margin[split][index], reference.margin[split][1])
        assert np.array_equal(carved.correct[split][index], reference.correct[split][1])
    assert lazy.names == ["mini7", "lenet"] and lazy.margin["calib"].shape == (2, 30)  # the source unchanged
    assert lazy.ensure(VARIANTS[1]) == 2 and np.array_equal(lazy.margin["calib"][2], full.margin["calib"][1])


def test_a_carved_half_scores_on_demand_from_its_own_rows() -> None:
    every = {v: scored(v, i) for i, v in enumerate(VARIANTS)}
    full = dse.CascadeProblem.from_scores(list(every.values()), 2, ACC, load_technology())
    lazy = dse.CascadeProblem.from_scores([every[VARIANTS[0]], every[VARIANTS[2]]], 1, ACC, load_technology(),
                                          builder=lambda variants: [every[v] for v in variants])
    order = np.random.default_rng(11).permutation(60)
    calib, test = np.sort(order[:30]), np.sort(order[30:])
    for carved, reference in ((lazy.resplit(calib, test).carve("certify", 0.5, seed=5),
                               full.resplit(calib, test).carve("certify", 0.5, seed=5)),
                              (lazy.carve("a", 0.3, seed=1).carve("b", 0.5, seed=2),
                               full.carve("a", 0.3, seed=1).carve("b", 0.5, seed=2))):
        index = carved.ensure(VARIANTS[1])
        for split in reference.margin:
            assert np.array_equal(carved.margin[split][index], reference.margin[split][1]), split
            assert np.array_equal(carved.correct[split][index], reference.correct[split][1]), split
