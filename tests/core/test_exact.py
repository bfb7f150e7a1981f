"""Exact threshold fronts, exact loss limits and the batch evaluator agree with slow, obvious references."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from dse.core._exact import (CascadeEvaluator, _ThreeStage, allowed_extra_errors, coordinate_front, exact_front_2,
                             exact_front_3, front)
from dse.core.optuna_adapter import hypervolume


def reference_run(margins, correct, energy, latency, thresholds) -> tuple[int, float, float, list[int]]:
    """Per-sample loop for one threshold vector: right answers, total energy and latency, samples per stage."""
    n_stages, n = margins.shape
    energy = np.broadcast_to(np.reshape(energy, (n_stages, -1)), margins.shape)
    latency = np.broadcast_to(np.reshape(latency, (n_stages, -1)), margins.shape)
    right, total_energy, total_latency, reach = 0, 0.0, 0.0, [0] * n_stages
    for i in range(n):
        for stage in range(n_stages):
            reach[stage] += 1
            total_energy += energy[stage, i]
            total_latency += latency[stage, i]
            if stage == n_stages - 1 or margins[stage, i] >= thresholds[stage]:
                right += int(correct[stage, i])
                break
    return right, total_energy, total_latency, reach


def brute_front(margins, correct, cost) -> list[tuple[tuple[float, ...], int, float]]:
    """Every threshold vector (+inf and each distinct margin per stage), Pareto-filtered; ties keep the
    lexicographically largest vector."""
    n_stages, n = margins.shape
    grids = [np.r_[np.inf, np.unique(margins[k])[::-1]] for k in range(n_stages - 1)]
    points = []
    for vector in itertools.product(*grids):
        right, energy, _, _ = reference_run(margins, correct, cost, cost, vector)
        points.append((energy / n, n - right, tuple(-t for t in vector)))
    kept, best = [], n + 1
    for energy, errors, negated in sorted(points):
        if errors < best:
            kept.append((tuple(-t for t in negated), errors, energy))
            best = errors
    return kept


def random_cascade(rng: np.random.Generator, n_stages: int, n: int, per_sample: bool, integer_cost: bool,
                   levels: int = 5):
    """Margins on a coarse grid (ties within and across stages), correctness, and costs (zeros included)."""
    margins = rng.integers(0, levels, (n_stages, n)) / (levels - 1)
    correct = rng.random((n_stages, n)) < np.linspace(0.5, 0.9, n_stages)[:, None]
    shape = (n_stages, n) if per_sample else (n_stages,)
    cost = rng.integers(0, 4, shape).astype(float) if integer_cost else rng.uniform(0, 3, shape)
    return margins, correct, cost


def as_tuples(result) -> list[tuple[tuple[float, ...], int, float]]:
    return [(tuple(t), int(e), float(x)) for t, e, x in zip(result.thresholds, result.errors, result.energy)]


three_stage_blocks = [functools.partial(exact_front_3, leaf_rows=rows, seed_fraction=seeds)
                      for rows, seeds in [(32, 8), (1, 1), (2, 2), (3, 10)]]


@pytest.mark.parametrize("n_stages, solver", [(2, exact_front_2)] + [(3, solver) for solver in three_stage_blocks])
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_exact_front_equals_brute_force_with_integer_costs(n_stages, solver, per_sample, seed) -> None:
    rng = np.random.default_rng(seed)
    margins, correct, cost = random_cascade(rng, n_stages, int(rng.integers(1, 13)), per_sample, True)
    result = solver(margins, correct, cost)
    assert result.errors.dtype == np.int64
    assert as_tuples(result) == brute_front(margins, correct, cost)  # thresholds, errors and energies exactly


@pytest.mark.parametrize("n_stages, solver", [(2, exact_front_2)] + [(3, solver) for solver in three_stage_blocks])
@pytest.mark.parametrize("seed", range(8))
def test_exact_front_equals_brute_force_with_float_costs(n_stages, solver, seed) -> None:
    rng = np.random.default_rng(100 + seed)
    margins, correct, cost = random_cascade(rng, n_stages, 14, seed % 2 == 0, False, levels=9)
    result = solver(margins, correct, cost)
    expected = brute_front(margins, correct, cost)
    assert result.errors.tolist() == [errors for _, errors, _ in expected]
    assert result.energy == pytest.approx([energy for _, _, energy in expected], rel=1e-12)


@pytest.mark.parametrize("solver", three_stage_blocks)
@pytest.mark.parametrize("seed", range(10))
def test_exact_front_3_with_many_ties_and_per_sample_costs(solver, seed) -> None:
    """Two margin levels per stage, so tie groups hold several samples; zero costs included."""
    rng = np.random.default_rng(300 + seed)
    margins, correct, cost = random_cascade(rng, 3, int(rng.integers(6, 15)), True, seed % 2 == 0, levels=2)
    result = solver(margins, correct, cost)
    expected = brute_front(margins, correct, cost)
    assert result.errors.tolist() == [errors for _, errors, _ in expected]
    assert result.energy == pytest.approx([energy for _, _, energy in expected], rel=1e-12)
    if seed % 2 == 0:  # integer costs: exact sums, so the tie rule's thresholds are checked too
        assert as_tuples(result) == expected


def test_reduction_keeps_every_front_point() -> None:
    """On 200 small random caches, every point of the brute-force front is reached by a point of the reduced
    (a, b) grid with the same errors and cost, and its stage-0 count is on the grid."""
    for seed in range(200):
        rng = np.random.default_rng(5000 + seed)
        margins, correct, cost = random_cascade(rng, 3, int(rng.integers(1, 11)), seed % 3 > 0, True,
                                                levels=int(rng.integers(2, 8)))
        cost_array = np.broadcast_to(np.reshape(cost, (3, -1)), margins.shape).astype(float)
        grid = _ThreeStage(margins, 1 - correct.astype(np.int64), cost_array)
        sorted_margins = [np.r_[np.inf, np.sort(margins[k])[::-1]] for k in range(2)]
        reached = set()
        for a, b in itertools.product(grid.accepted0, grid.accepted1):
            right, energy, _, _ = reference_run(margins, correct, cost, cost, (sorted_margins[0][a],
                                                                              sorted_margins[1][b]))
            reached.add((len(correct[0]) - right, round(energy)))  # integer costs: exact totals
        grid_thresholds = set(sorted_margins[0][grid.accepted0].tolist())
        for vector, errors, energy in brute_front(margins, correct, cost):
            assert (errors, round(energy * len(correct[0]))) in reached, seed
            assert vector[0] in grid_thresholds, seed


@pytest.mark.parametrize("integer_cost, leaf_rows", [(False, 2), (True, 2), (True, 5)])
def test_exact_front_3_branch_and_bound_on_larger_cache(integer_cost, leaf_rows) -> None:
    """Enough rows that ranges are pruned and a subsample seeds the bound; checked against every threshold vector
    (with integer costs the sums are exact, so the tie rule's thresholds are checked too)."""
    rng = np.random.default_rng(7)
    margins, correct, cost = random_cascade(rng, 3, 300, True, integer_cost, levels=60)
    result = exact_front_3(margins, correct, cost, leaf_rows=leaf_rows, seed_fraction=2)
    evaluator = CascadeEvaluator(margins, correct, cost, cost)
    grids = [np.r_[np.inf, np.unique(margins[k])[::-1]] for k in range(2)]
    vectors = np.array(list(itertools.product(*grids)))
    every = evaluator.evaluate(vectors)
    order = np.lexsort((-vectors[:, 1], -vectors[:, 0], every.errors, every.energy))  # ties: largest vector first
    best, expected = 10**9, []
    for i in order:
        if every.errors[i] < best:
            expected.append((every.errors[i], every.energy[i], tuple(vectors[i])))
            best = every.errors[i]
    assert result.errors.tolist() == [e for e, _, _ in expected]
    assert result.energy == pytest.approx([x for _, x, _ in expected], rel=1e-12)
    assert np.all(np.diff(result.energy) > 0) and np.all(np.diff(result.errors) < 0)
    if integer_cost:
        assert [tuple(t) for t in result.thresholds] == [t for _, _, t in expected]


@pytest.mark.parametrize("seed", range(10))
def test_front_up_to_an_error_count_is_the_brute_force_front_cut(seed) -> None:
    """With max_errors (and `beyond`), front() gives exactly the brute-force front's points of at most max_errors
    errors and the `beyond` ones of fewest errors above it, for 2 and 3 stages; exact_front_3 bounded at a cap gives
    the brute-force points up to the cap (larger caches: pruning and seeds at work)."""
    rng = np.random.default_rng(100 + seed)
    for n_stages in (2, 3):
        margins, correct, cost = random_cascade(rng, n_stages, int(rng.integers(1, 13)), seed % 2 == 0, True)
        expected = brute_front(margins, correct, cost)
        for max_errors in range(0, len(correct[0]) + 1, 2):
            for beyond in (0, 1, 3):
                above = [p for p in expected if p[1] > max_errors]
                wanted = above[len(above) - min(beyond, len(above)):] + [p for p in expected if p[1] <= max_errors]
                got = as_tuples(front(margins, correct, cost, max_errors=max_errors, beyond=beyond))
                assert got == wanted, (n_stages, max_errors, beyond)
    margins, correct, cost = random_cascade(rng, 3, 300, True, True, levels=60)
    full = exact_front_3(margins, correct, cost, leaf_rows=2, seed_fraction=2)
    for cap in (0, 40, 90, 150, 300):
        bounded = exact_front_3(margins, correct, cost, leaf_rows=2, seed_fraction=2, max_errors=cap)
        assert as_tuples(bounded) == [p for p in as_tuples(full) if p[1] <= cap]


def test_front_thresholds_are_achievable_and_sorted() -> None:
    rng = np.random.default_rng(3)
    margins, correct, cost = random_cascade(rng, 3, 40, True, False, levels=12)
    result = exact_front_3(margins, correct, cost)
    for vector, errors, energy in zip(result.thresholds, result.errors, result.energy):
        right, total, _, _ = reference_run(margins, correct, cost, cost, vector)
        assert (40 - right, total / 40) == (errors, pytest.approx(energy, rel=1e-12))
        assert all(t == np.inf or t in margins[k] for k, t in enumerate(vector))


def hypervolume_ratio(found, exact, reference) -> float:
    """Hypervolume of a front over that of the exact one, both minimising (energy, errors)."""
    def volume(result):
        return hypervolume(np.column_stack([result.energy, result.errors]).astype(float), reference)
    return volume(found) / volume(exact)


def enumerated_front(margins, correct, cost):
    """Exact front of any small cascade by evaluating every threshold vector."""
    grids = [np.r_[np.inf, np.unique(margins[k])[::-1]] for k in range(margins.shape[0] - 1)]
    vectors = np.array(list(itertools.product(*grids)))
    every = CascadeEvaluator(margins, correct, cost, cost).evaluate(vectors)
    return vectors, every


@pytest.mark.parametrize("n_stages, exact_tail, least_ratio", [(4, False, 0.95), (5, False, 0.95), (4, True, 0.999),
                                                               (5, True, 0.95)])
def test_coordinate_front_is_achievable_and_close_to_enumeration(n_stages, exact_tail, least_ratio) -> None:
    ratios = []
    for seed in range(15):
        rng = np.random.default_rng(1000 * n_stages + seed)
        n = 9 if n_stages == 4 else 7
        margins, correct, cost = random_cascade(rng, n_stages, n, seed % 2 == 0, False, levels=n + 3)
        found = coordinate_front(margins, correct, cost, exact_tail=exact_tail)
        check = CascadeEvaluator(margins, correct, cost, cost).evaluate(found.thresholds)
        assert check.errors.tolist() == found.errors.tolist()
        assert check.energy == pytest.approx(found.energy, rel=1e-12)
        vectors, every = enumerated_front(margins, correct, cost)
        order = np.lexsort((every.errors, every.energy))
        kept, best = [], n + 1
        for i in order:
            if every.errors[i] < best:
                kept.append(i)
                best = every.errors[i]
        exact = type(found)(vectors[kept], every.errors[kept], every.energy[kept])
        # No found point beats the exact front.
        for errors, energy in zip(found.errors, found.energy):
            cheaper = exact.energy[exact.errors <= errors]
            assert cheaper.size and cheaper.min() <= energy * (1 + 1e-12)
        reference = np.array([every.energy.max() * 1.1 + 1e-9, n + 1.0])
        ratios.append(hypervolume_ratio(found, exact, reference))
    assert min(ratios) >= least_ratio  # measured on more caches: see coordinate_front's docstring


@pytest.mark.parametrize("n_stages", [1, 2, 3])
def test_front_dispatch_and_coordinate_front_exact_for_two_stages(n_stages) -> None:
    rng = np.random.default_rng(n_stages)
    margins, correct, cost = random_cascade(rng, n_stages, 30, True, False, levels=10)
    result = front(margins, correct, cost)
    if n_stages == 1:
        assert result.thresholds.shape == (1, 0)
        assert result.errors.tolist() == [int((~correct[0]).sum())]
    if n_stages == 2:
        other = coordinate_front(margins, correct, cost)
        assert np.array_equal(result.thresholds, other.thresholds)
        assert np.array_equal(result.errors, other.errors)
        assert result.energy == pytest.approx(other.energy, rel=1e-12)  # summed in another order
    if n_stages == 3:
        assert as_tuples(result) == as_tuples(exact_front_3(margins, correct, cost))


def test_loss_limit_is_exact_at_the_boundary() -> None:
    assert allowed_extra_errors(1.0, 1000) == 10
    assert 100 * (1 - 990 / 1000) > 1.0  # the float loss from accuracies rejects this case
    assert allowed_extra_errors("1.0", 1000) == 10
    assert allowed_extra_errors(0.3, 1000) == 3
    assert allowed_extra_errors(0.29, 1000) == 2
    assert allowed_extra_errors(0.7, 10) == 0
    assert allowed_extra_errors(0.0, 1000) == 0
    assert allowed_extra_errors(250, 40) == 40
    for limit in [0.1, 0.3, 0.7, 1.1, 2.3, 4.9]:
        for n in [1, 7, 100, 999, 1000, 10**6]:
            e = allowed_extra_errors(limit, n)
            assert e * 1000 <= round(limit * 1000) * n / 100 < (e + 1) * 1000


@pytest.mark.parametrize("limit, n, message", [(-0.1, 10, ">= 0"), (float("nan"), 10, "finite"),
                                               (float("inf"), 10, "finite"), (1.0, 0, "positive integer"),
                                               (1.0, 2.5, "positive integer"), (True, 10, "number")])
def test_loss_limit_rejects_bad_input(limit, n, message) -> None:
    with pytest.raises(ValueError, match=message):
        allowed_extra_errors(limit, n)


@pytest.mark.parametrize("n_stages", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("block", [None, 1, 3, 7])
def test_evaluator_matches_per_sample_loop(n_stages, per_sample, block) -> None:
    rng = np.random.default_rng(n_stages * 10 + per_sample + (block or 0) * 100)
    n = 53
    margins = rng.integers(0, 8, (n_stages, n)) / 7  # ties within a stage
    correct = rng.random((n_stages, n)) < 0.7
    shape = (n_stages, n) if per_sample else (n_stages,)
    energy, latency = rng.uniform(0, 5, shape), rng.uniform(0, 1, shape)
    # Thresholds equal to margins, between them, below all and +inf.
    choices = np.r_[np.unique(margins), 0.5 / 7, -1.0, np.inf]
    thresholds = rng.choice(choices, (60, n_stages - 1))
    evaluator = CascadeEvaluator(margins, correct, energy, latency, memory_bytes=4096, block=block)
    result = evaluator.evaluate(thresholds)
    for b, vector in enumerate(thresholds):
        right, total_energy, total_latency, reach = reference_run(margins, correct, energy, latency, vector)
        assert result.errors[b] == n - right
        assert result.accuracy[b] == right / n
        assert result.energy[b] == pytest.approx(total_energy / n, rel=1e-12)
        assert result.latency[b] == pytest.approx(total_latency / n, rel=1e-12)
        assert result.reach_fraction[b].tolist() == [r / n for r in reach]


@pytest.mark.parametrize("n_stages", [2, 3, 4])
@pytest.mark.parametrize("seed", range(4))
def test_evaluator_reusing_sorts_matches_per_sample_loop(n_stages, seed) -> None:
    """An evaluator made `sorted_like` another of the same margins (other correctness and costs) gives the per-sample
    loop's results; one of other margins is refused."""
    rng = np.random.default_rng(200 + seed)
    n = 47
    margins = rng.integers(0, 6, (n_stages, n)) / 5
    first = CascadeEvaluator(margins, rng.random((n_stages, n)) < 0.6, rng.uniform(0, 2, n_stages), np.ones(n_stages),
                             memory_bytes=4096, block=3)
    correct, energy = rng.random((n_stages, n)) < 0.8, rng.uniform(0, 5, (n_stages, n))
    second = CascadeEvaluator(margins.copy(), correct, energy, energy, memory_bytes=4096, block=3, sorted_like=first)
    thresholds = rng.choice(np.r_[np.unique(margins), -1.0, np.inf], (40, n_stages - 1))
    result = second.evaluate(thresholds)
    for b, vector in enumerate(thresholds):
        right, total_energy, _, reach = reference_run(margins, correct, energy, energy, vector)
        assert result.errors[b] == n - right and result.reach_fraction[b].tolist() == [r / n for r in reach]
        assert result.energy[b] == pytest.approx(total_energy / n, rel=1e-12)
    with pytest.raises(ValueError, match="same margins"):
        CascadeEvaluator(margins[:, ::-1], correct, energy, energy, sorted_like=first)


def test_evaluator_chunking_does_not_change_results() -> None:
    rng = np.random.default_rng(5)
    margins, correct = rng.random((3, 500)).astype(np.float32), rng.random((3, 500)) < 0.8
    energy = rng.uniform(1, 9, (3, 500))
    thresholds = rng.random((700, 2)).astype(np.float32)
    small = CascadeEvaluator(margins, correct, energy, np.ones(3), memory_bytes=20_000).evaluate(thresholds)
    large = CascadeEvaluator(margins, correct, energy, np.ones(3)).evaluate(thresholds)
    assert small.errors.tolist() == large.errors.tolist()
    assert small.energy == pytest.approx(large.energy, rel=1e-12)
    assert np.array_equal(small.reach_fraction, large.reach_fraction)


@pytest.mark.parametrize("call, message", [
    (lambda: exact_front_2(np.zeros((3, 4)), np.ones((3, 4), bool), np.ones(3)), "needs 2 stages, got 3"),
    (lambda: exact_front_3(np.zeros((2, 4)), np.ones((2, 4), bool), np.ones(2)), "needs 3 stages, got 2"),
    (lambda: front(np.full((2, 2), np.nan), np.ones((2, 2), bool), np.ones(2)), "margins must be finite"),
    (lambda: front(np.zeros((2, 2)), np.ones((2, 3), bool), np.ones(2)), "correct must have"),
    (lambda: front(np.zeros((2, 2)), np.full((2, 2), 2), np.ones(2)), "0/1"),
    (lambda: front(np.zeros((2, 2)), np.ones((2, 2), bool), -np.ones(2)), ">= 0"),
    (lambda: front(np.zeros((2, 2)), np.ones((2, 2), bool), np.ones(3)), "cost must be"),
    (lambda: front(np.zeros(4), np.ones(4, bool), np.ones(1)), "margins must be"),
    (lambda: CascadeEvaluator(np.zeros((3, 2)), np.ones((3, 2), bool), np.ones(3), np.ones(3)).evaluate(
        np.zeros((1, 3))), "need 2 thresholds"),
    (lambda: CascadeEvaluator(np.zeros((2, 2)), np.ones((2, 2), bool), np.ones(2), np.ones(2)).evaluate(
        [np.nan]), "NaN"),
])
def test_bad_input_is_rejected_in_one_line(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("seed", range(6))
def test_the_packed_descending_sort_equals_argsort(seed) -> None:
    """The float32 key sort (the fast path) against argsort: same margins, flags and order up to ties."""
    from dse.core._exact import _descending

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    margin = rng.choice(np.r_[rng.normal(size=50), 0.0, -0.0, 1e-40, -1e-40, 3e38, -3e38], n).astype(np.float32)
    margin = margin.astype(np.float64)
    flags = [rng.integers(0, 2, n), rng.integers(0, 2, n)]
    sorted_margin, (first, second), order = _descending(margin, *flags)
    reference = np.argsort(-margin, kind="stable")
    assert np.array_equal(sorted_margin, margin[reference])
    assert np.array_equal(margin[order()], sorted_margin)
    assert np.array_equal(first, flags[0][order()]) and np.array_equal(second, flags[1][order()])
    assert sorted(order().tolist()) == list(range(n))


@pytest.mark.parametrize("seed", range(6))
def test_exact_front_2_is_the_same_with_margins_beyond_float32(seed) -> None:
    """Margins a float32 cannot hold take the argsort path; its front equals brute force too."""
    rng = np.random.default_rng(500 + seed)
    margins, correct, cost = random_cascade(rng, 2, int(rng.integers(1, 13)), seed % 2 == 0, True, levels=4)
    margins = margins / 3 + 1e-12  # thirds: not float32 values
    assert as_tuples(exact_front_2(margins, correct, cost)) == brute_front(margins, correct, cost)
