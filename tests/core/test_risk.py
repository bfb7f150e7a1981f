"""Certified loss budget: exact binomial tails, the paired-loss test's size and its bound's coverage, and
Learn-then-Test selection on synthetic scores whose true risk curve is known."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from dse.core._risk import (
    RiskError, Structure, allowed_loss, assess, binomial_cdf, binomial_sf, binomial_upper, certifies, certify,
    critical_worse, fixed_sequence, loss_counts, loss_upper_bound, select_certified, statistic,
)

ALPHA_PCT, DELTA = 0.3, 0.1
RESAMPLES = 300
# generous: the 99.9% one-sided binomial quantile of a rate of exactly DELTA over RESAMPLES draws is ~0.155
TOLERATED_RATE = DELTA + 3.1 * math.sqrt(DELTA * (1 - DELTA) / RESAMPLES)
GRID = np.linspace(1.0, 0.0, 201)  # candidate thresholds, safe to aggressive, fixed before any data


def exact_cdf(k: int, n: int, p: Fraction) -> Fraction:
    """Slow reference: P(Binomial(n, p) <= k) in exact rational arithmetic."""
    return sum((math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k + 1, 0))), Fraction(0))


def test_binomial_tails_match_exact_reference_on_random_inputs() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        k = int(rng.integers(-1, n + 2))
        p = Fraction(int(rng.integers(0, 1001)), 1000)
        cdf = exact_cdf(k, n, p)
        assert binomial_cdf(k, n, float(p)) == pytest.approx(float(cdf), rel=1e-9, abs=1e-300)
        assert binomial_sf(k + 1, n, float(p)) == pytest.approx(float(1 - cdf), rel=1e-9, abs=1e-12)


def test_clopper_pearson_closed_form_and_outward_rounding() -> None:
    n, delta = 5000, 0.08
    assert binomial_upper(0, n, delta) == pytest.approx(1 - delta ** (1 / n), abs=1e-11)
    assert binomial_upper(n, n, delta) == 1.0
    for k in (1, 7, 30, 400):
        upper = binomial_upper(k, n, delta)
        assert k / n < upper
        assert binomial_cdf(k, n, upper) <= delta < binomial_cdf(k, n, upper - 1e-9)


def test_clopper_pearson_coverage_is_exact_over_every_outcome() -> None:
    n, delta = 40, 0.1
    for p in (0.01, 0.05, 0.2, 0.5, 0.93):
        pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
        assert sum(q for k, q in enumerate(pmf) if binomial_upper(k, n, delta) < p) <= delta


def trinomial(n: int, p_worse: float, p_better: float) -> list[tuple[int, int, float]]:
    """Every (worse, better) outcome of n samples with its exact probability (slow reference)."""
    p_same = 1 - p_worse - p_better
    return [(w, b, math.comb(n, w) * math.comb(n - w, b) * p_worse**w * p_better**b * p_same ** (n - w - b))
            for w in range(n + 1) for b in range(n + 1 - w)]


@pytest.mark.parametrize("n, alpha_pct, laws", [
    (40, 10.0, ((0.1, 0.0), (0.12, 0.02), (0.15, 0.05), (0.3, 0.2), (0.45, 0.35), (0.2, 0.0))),
    (150, 2.0, ((0.02, 0.0), (0.03, 0.01), (0.06, 0.04), (0.025, 0.0))),
])
def test_the_test_rejects_a_true_null_at_most_delta_over_the_whole_trinomial(
        n: int, alpha_pct: float, laws: tuple[tuple[float, float], ...]) -> None:
    """P(certified | risk >= alpha) <= delta, enumerated exactly, on and inside the null."""
    delta = 0.1
    for p_worse, p_better in laws:
        size = sum(q for w, b, q in trinomial(n, p_worse, p_better) if certifies(w, b, n, alpha_pct, delta))
        assert size <= delta
    power = sum(q for w, b, q in trinomial(n, alpha_pct / 1000, 0.0) if certifies(w, b, n, alpha_pct, delta))
    assert power > 0.5  # and it does reject when the risk is well below alpha


def test_upper_bound_covers_the_risk_over_the_whole_trinomial() -> None:
    n, delta = 30, 0.1
    for p_worse, p_better in ((0.05, 0.01), (0.1, 0.1), (0.02, 0.0), (0.3, 0.2), (0.0, 0.05)):
        risk = p_worse - p_better
        miss = sum(q for w, b, q in trinomial(n, p_worse, p_better) if risk > loss_upper_bound(w, b, n, delta))
        assert miss <= delta


def test_statistic_region_is_closed_under_fewer_worse_and_more_better() -> None:
    """What the cover of the nuisance range relies on: T <= c < 0 stays so with one fewer worse or one more better."""
    for n, risk in ((5000, 0.003), (40, 0.1), (100, -0.02)):
        worse, better = np.meshgrid(np.arange(1, 60), np.arange(0, 60), indexing="ij")
        value = statistic(worse, better, n, risk)
        negative = value < 0
        assert negative.any()
        assert np.all(statistic(worse - 1, better, n, risk)[negative] <= value[negative])
        assert np.all(statistic(worse, better + 1, n, risk)[negative] <= value[negative])


def test_critical_count_agrees_with_the_upper_bound() -> None:
    n = 5000
    for better in (0, 3, 10, 20):
        top = critical_worse(better, n, ALPHA_PCT, DELTA)
        assert top >= 0 and certifies(top, better, n, ALPHA_PCT, DELTA)
        assert not certifies(top + 1, better, n, ALPHA_PCT, DELTA)
        assert loss_upper_bound(top, better, n, DELTA) <= ALPHA_PCT / 100 + 1 / (8 * n)
        assert loss_upper_bound(top + 1, better, n, DELTA) > ALPHA_PCT / 100 - 1 / (8 * n)


def test_loss_counts_match_a_slow_loop_on_random_inputs_with_ties() -> None:
    rng = np.random.default_rng(2)
    for _ in range(30):
        n = int(rng.integers(1, 80))
        margin = rng.integers(0, 6, n) / 5  # many ties, on the candidate values too
        little, big = rng.random(n) < 0.7, rng.random(n) < 0.8
        thresholds = np.r_[np.inf, np.sort(rng.integers(0, 7, 5) / 5)[::-1]]
        worse, better = loss_counts(margin, little, big, thresholds)
        for j, t in enumerate(thresholds):
            kept = [i for i in range(n) if margin[i] >= t]
            assert worse[j] == sum(1 for i in kept if not little[i] and big[i])
            assert better[j] == sum(1 for i in kept if little[i] and not big[i])


def test_fixed_sequence_stops_at_the_first_failure() -> None:
    n = 5000
    worse = np.array([0, 1, 3, 200, 0])  # the fourth fails; the fifth would pass but is never reached
    assert certifies(0, 0, n, ALPHA_PCT, DELTA) and not certifies(200, 0, n, ALPHA_PCT, DELTA)
    assert fixed_sequence(worse, np.zeros(5, int), n, ALPHA_PCT, DELTA) == 3
    assert fixed_sequence(worse[:3], np.zeros(3, int), n, ALPHA_PCT, DELTA) == 3
    assert fixed_sequence(np.array([200]), np.array([0]), n, ALPHA_PCT, DELTA) == 0


def test_allowed_loss_reads_alpha_as_a_decimal() -> None:
    assert 0.57 * 10000 / 100 < 57  # the float product would floor to 56
    assert allowed_loss(0.57, 10000) == 57
    assert allowed_loss(0.3, 5000) == 15 and allowed_loss(0.3, 4999) == 14


def synthetic(rng: np.random.Generator, n: int, worse_rate: float, better_rate: float,
              first_energy_pj: float = 1.0, name: str = "s") -> Structure:
    """Margins uniform on [0, 1]; a sample with margin m is worse with probability worse_rate (1 - m) and better
    with probability better_rate (1 - m), so the true risk at threshold t is true_risk(t) below."""
    margin = rng.random(n)
    u = rng.random(n) / (1 - margin)
    worse, better = u < worse_rate, (u >= worse_rate) & (u < worse_rate + better_rate)
    both_wrong = ~worse & ~better & (rng.random(n) < 0.01)
    return Structure(name, margin, ~worse & ~both_wrong, ~better & ~both_wrong, first_energy_pj, 10.0)


def true_risk(threshold: float, worse_rate: float, better_rate: float) -> float:
    """Integral of (worse_rate - better_rate)(1 - m) over the kept margins m in [t, 1]."""
    t = min(max(threshold, 0.0), 1.0)
    return (worse_rate - better_rate) * (1 - t) ** 2 / 2


def plain_choice(structure: Structure) -> float:
    """The correction removed: the most aggressive candidate whose calibration loss is <= alpha (in order)."""
    worse, better = loss_counts(structure.margin, structure.first_correct, structure.reference_correct, GRID)
    within = worse - better <= allowed_loss(ALPHA_PCT, structure.rows)
    passed = len(within) if within.all() else int(np.argmin(within))
    return float(GRID[passed - 1]) if passed else math.inf


def test_certified_threshold_holds_its_risk_and_the_uncorrected_one_does_not() -> None:
    rates = (0.04, 0.01)  # true risk 0.015 (1 - t)^2: alpha reached at t = 0.553
    rng = np.random.default_rng(3)
    certified_miss = plain_miss = 0
    for _ in range(RESAMPLES):
        structure = synthetic(rng, 2000, *rates)
        point = certify(structure, GRID, ALPHA_PCT, DELTA)
        certified_miss += point is not None and true_risk(point.threshold, *rates) > ALPHA_PCT / 100
        plain_miss += true_risk(plain_choice(structure), *rates) > ALPHA_PCT / 100
    assert certified_miss / RESAMPLES <= TOLERATED_RATE
    assert plain_miss / RESAMPLES > 0.3  # the check can fail: without the correction it does


@pytest.mark.parametrize("composition", ["bonferroni", "split"])
def test_selection_across_structures_holds_the_risk_of_the_chosen_one(composition: str) -> None:
    kinds = [((0.04, 0.01), 1.0), ((0.06, 0.03), 0.5), ((0.02, 0.0), 2.0)]
    rng = np.random.default_rng(4)
    miss = chosen = 0
    for seed in range(RESAMPLES):
        structures = [synthetic(rng, 3000, *rates, energy, f"s{i}") for i, (rates, energy) in enumerate(kinds)]
        point = select_certified(structures, GRID, ALPHA_PCT, DELTA, composition, seed=seed)
        if point is not None:
            chosen += 1
            miss += true_risk(point.threshold, *kinds[point.structure][0]) > ALPHA_PCT / 100
    assert chosen > RESAMPLES // 2  # it certifies something, not only nothing
    assert miss / RESAMPLES <= TOLERATED_RATE


def test_point_exposes_calibration_loss_bound_and_energy() -> None:
    margin = np.array([0.9, 0.8, 0.3, 0.1])
    structure = Structure("s", margin, np.array([False, True, True, True]), np.array([True, False, True, True]),
                          2.0, 10.0)
    point = assess(structure, 0.5, DELTA, index=3)
    assert (point.structure, point.rows, point.calib_loss_pct) == (3, 4, 0.0)  # one worse, one better kept
    assert point.energy_pj == 2.0 + 0.5 * 10.0
    assert (point.worse, point.better) == (1, 1)
    assert point.upper_bound_pct == 100 * loss_upper_bound(1, 1, 4, DELTA)


def test_bad_arguments_name_what_is_wrong() -> None:
    structure = Structure("s", np.array([0.5, 0.6]), np.ones(2, bool), np.ones(2, bool), 1.0, 2.0)
    with pytest.raises(RiskError, match="delta must be in"):
        loss_upper_bound(0, 0, 10, 1.5)
    with pytest.raises(RiskError, match="delta must be in"):
        certifies(0, 0, 10, ALPHA_PCT, 0.0)
    with pytest.raises(RiskError, match="0 <= worse"):
        loss_upper_bound(8, 5, 10, 0.1)
    with pytest.raises(RiskError, match="safe to aggressive"):
        certify(structure, np.array([0.1, 0.9]), ALPHA_PCT, DELTA)
    with pytest.raises(RiskError, match="same calibration rows"):
        select_certified([structure, structure.take(np.array([0]))], GRID, ALPHA_PCT, DELTA)
    with pytest.raises(RiskError, match="composition must be"):
        select_certified([structure], GRID, ALPHA_PCT, DELTA, "holm")  # type: ignore[arg-type]
    with pytest.raises(RiskError, match="equal-length"):
        Structure("bad", np.zeros(3), np.ones(2, bool), np.ones(3, bool), 1.0, 1.0)
