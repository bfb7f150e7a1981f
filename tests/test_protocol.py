"""Park 2015 §5.2 protocol and the exact loss-budget threshold, on synthetic cached rows."""

from __future__ import annotations

import numpy as np

import costmodel
from dse import CascadeProblem
from dse.mechanisms.big_little.park2015_protocol import protocol_splits, run_protocol, summarise
from nets import Variant


def _problem(seed: int = 0, n: int = 400) -> CascadeProblem:
    rng = np.random.default_rng(seed)
    names = ["lenet", "mini7", "mini8"]
    variants = [Variant(name) for name in names]
    margin = {s: rng.random((3, n)).astype(np.float32) for s in ("calib", "test")}
    correct = {s: rng.random((3, n)) < np.array([[0.99], [0.2], [0.1]]) + 0.8 * margin[s] for s in ("calib", "test")}
    return CascadeProblem.from_arrays(variants, 0, margin, correct, costmodel.Accelerator(),
                                      costmodel.load_technology())


def test_splits_are_disjoint_covering_and_seeded() -> None:
    labels = np.repeat(np.arange(10), 100)
    splits = protocol_splits(labels, n_splits=10, seed=0)
    assert [s.seed for s in splits] == list(range(10))
    for split in splits:
        assert len(np.intersect1d(split.calib, split.held_out)) == 0
        assert np.array_equal(np.sort(np.r_[split.calib, split.held_out]), np.arange(1000))
        assert np.bincount(labels[split.calib]).tolist() == [50] * 10
    again = protocol_splits(labels, n_splits=10, seed=0)
    assert all(np.array_equal(a.calib, b.calib) for a, b in zip(splits, again))
    assert not np.array_equal(splits[0].calib, splits[1].calib)


def test_protocol_rows_and_search_sees_only_calibration() -> None:
    problem = _problem()
    labels = np.repeat(np.arange(4), 200)  # pool of calib+test = 800 samples
    seen = []

    def search(halves: CascadeProblem) -> tuple[list[int], float]:
        seen.append(halves.margin["calib"].shape[1])
        return [1, 0], 0.5

    rows = run_protocol(problem, labels, max_loss_pct=1.0, n_splits=3, searches={"search": search})
    assert seen == [400, 400, 400]
    assert set(rows["method"]) == {"static", "dynamic", "search"}
    assert len(rows[rows["method"] == "static"]) == 3 * 2
    summary = summarise(rows)
    assert {"energy_reduction_pct_mean", "accuracy_loss_pct_std"} <= set(summary.columns)
    assert (rows["energy_reduction_pct"] < 100).all()
