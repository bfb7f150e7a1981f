"""The brute-force oracle of benchmarks/search_quality.py against the exact 2- and 3-stage threshold fronts.

Inputs are random and small, with many tied margins and integer costs (sums of integers are exact in any order, so
energies and the tie rule compare exactly); the oracle shares no code with the solver.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dse.exact import exact_front_2, exact_front_3, front


def _load_oracle():  # type: ignore[no-untyped-def]
    """benchmarks/_threshold_oracle.py (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_threshold_oracle.py"
    spec = importlib.util.spec_from_file_location("threshold_oracle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


oracle = _load_oracle()


def _cascade(rng: np.random.Generator, stages: int, n: int, levels: int, per_sample: bool, float32: bool):  # type: ignore[no-untyped-def]
    """Margins on a few levels (ties everywhere), correctness rising with the stage, integer costs."""
    margins = rng.integers(0, levels, (stages, n)) / (levels - 1 if float32 else 3 * levels)
    correct = rng.random((stages, n)) < np.linspace(0.6, 0.95, stages)[:, None]
    shape = (stages, n) if per_sample else (stages,)
    cost = rng.integers(0, 6, shape).astype(np.float64)
    return margins, correct, cost


def _assert_same(solver, expected) -> None:  # type: ignore[no-untyped-def]
    """Same points, same energies (exact: integer costs), same threshold vectors (the tie rule)."""
    np.testing.assert_array_equal(solver.errors, expected.errors)
    np.testing.assert_array_equal(solver.energy, expected.energy)
    np.testing.assert_array_equal(solver.thresholds, expected.thresholds)


@pytest.mark.parametrize("seed", range(60))
def test_two_stage_front_is_the_brute_force_front(seed: int) -> None:
    rng = np.random.default_rng(seed)
    margins, correct, cost = _cascade(rng, 2, int(rng.integers(1, 60)), int(rng.integers(2, 12)),
                                      per_sample=seed % 2 == 1, float32=seed % 3 != 0)
    expected = oracle.brute_force_front(margins, correct, cost)
    _assert_same(exact_front_2(margins, correct, cost), expected)
    _assert_same(front(margins, correct, cost), expected)


@pytest.mark.parametrize("seed", range(40))
def test_three_stage_front_is_the_brute_force_front(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    margins, correct, cost = _cascade(rng, 3, int(rng.integers(1, 80)), int(rng.integers(2, 10)),
                                      per_sample=seed % 2 == 1, float32=seed % 3 != 0)
    expected = oracle.brute_force_front(margins, correct, cost)
    _assert_same(exact_front_3(margins, correct, cost, leaf_rows=int(rng.integers(1, 6))), expected)
    _assert_same(front(margins, correct, cost), expected)


@pytest.mark.parametrize("seed", range(4))
def test_three_stage_front_with_seeds_is_the_brute_force_front(seed: int) -> None:
    """Enough samples (>= 800) for exact_front_3's seeded pruning, few enough distinct margins to enumerate."""
    rng = np.random.default_rng(200 + seed)
    margins, correct, cost = _cascade(rng, 3, 900, 24, per_sample=seed % 2 == 1, float32=True)
    _assert_same(exact_front_3(margins, correct, cost), oracle.brute_force_front(margins, correct, cost))


def test_oracle_on_a_front_worked_by_hand() -> None:
    """Three samples, stage costs 1 then 4; stage 0 is right on the first only, stage 1 on the first two. Accepting
    none: 1 error (the third), 5 per sample; margin >= 0.9: 1 error, (1 + 5 + 5) / 3; >= 0.5: 2 errors, (1 + 1 + 5) / 3
    (dominated); all: 2 errors, 1. The front is all (1, 2 errors), then >= 0.9 (11/3, 1 error)."""
    margins = np.array([[0.9, 0.5, 0.2], [0.0, 0.0, 0.0]])
    correct = np.array([[True, False, False], [True, True, False]])
    result = oracle.brute_force_front(margins, correct, np.array([1.0, 4.0]))
    np.testing.assert_array_equal(result.thresholds, [[0.2], [0.9]])
    np.testing.assert_array_equal(result.errors, [2, 1])
    np.testing.assert_allclose(result.energy, [1.0, 11 / 3])
