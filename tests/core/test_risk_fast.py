"""The certificate's fast path (critical counts, upper bounds) against the slow, obvious computation it replaced, on
random counts.

The reference below builds the whole (worse, better) grid of the multinomial for every law of the null's cover and
sums its mass below every cut at once; it shares only `statistic` (the definition) and the cover's constants with
`dse.core._risk`."""

from __future__ import annotations

import math

import numpy as np

from dse.core._risk import (_CELLS, _TIE, NUISANCE_SHARE, allowed_loss, certifies, critical_worse, loss_upper_bound,
                            statistic)


def log_factorials(n: int) -> np.ndarray:
    return np.array([math.lgamma(i + 1) for i in range(n + 1)])


def binomial_tail(ks: np.ndarray, n: int, p: float) -> float:
    """Sum of the Binomial(n, p) pmf over ks (log space)."""
    if len(ks) == 0:
        return 0.0
    if p <= 0.0:
        return float(0 in ks)
    if p >= 1.0:
        return float(n in ks)
    lf = log_factorials(n)
    logs = lf[n] - lf[ks] - lf[n - ks] + ks * math.log(p) + (n - ks) * math.log1p(-p)
    return float(min(1.0, np.exp(logs).sum()))


def clopper_pearson_upper(k: int, n: int, level: float) -> float:
    if k >= n:
        return 1.0
    low, high = k / n, 1.0
    while high - low > 1e-12:
        middle = (low + high) / 2
        low, high = (middle, high) if binomial_tail(np.arange(k + 1), n, middle) > level else (low, middle)
    return high


def reach(n: int, p: float) -> int:
    return min(n, math.ceil(n * p + 8 * math.sqrt(n * p * (1 - p)) + 8))


def slow_null_mass(better: int, n: int, risk: float, gamma: float, cuts: np.ndarray) -> np.ndarray:
    """The largest probability of statistic <= cut, for each cut, over the corner laws of the cells covering p_better
    up to its Clopper-Pearson bound, summed over the full (worse, better) grid up to 8 standard deviations out, plus
    the probability beyond."""
    low, high = max(0.0, -risk), min(clopper_pearson_upper(better, n, gamma), (1 - risk) / 2)
    if high <= low:
        return np.zeros(len(cuts))
    cells = min(math.ceil((high - low) * 8 * n), _CELLS)
    edges = np.minimum(low + np.arange(cells + 2) * max(1 / (8 * n), (high - low) / cells), (1 - risk) / 2)
    keep = edges[1:] > edges[:-1]
    worse_rates, better_rates = edges[:-1][keep] + risk, edges[1:][keep]
    top_w, top_b = reach(n, worse_rates.max()), reach(n, better_rates.max())
    w = np.arange(top_w + 1)[:, None]
    b = np.arange(top_b + 1)[None, :]
    rest = n - w - b
    values = statistic(w, b, n, risk)
    inside = rest >= 0
    counts = np.stack([np.broadcast_to(x, rest.shape)[inside] for x in (w, b, rest)], axis=1)
    below = (values[inside][:, None] <= cuts[None, :] + _TIE).astype(np.float64)
    lf = log_factorials(n)
    largest = np.zeros(len(cuts))
    for p_w, p_b in zip(worse_rates, better_rates):
        with np.errstate(divide="ignore"):
            logs = np.maximum(np.log(np.array([p_w, p_b, 1 - p_w - p_b])), -1e250)
        largest = np.maximum(largest, np.exp(lf[n] - lf[counts].sum(axis=1) + counts @ logs) @ below)
    cut_off = binomial_tail(np.arange(top_w + 1, n + 1), n, worse_rates.max()) + \
        binomial_tail(np.arange(top_b + 1, n + 1), n, better_rates.max())
    return np.minimum(largest + cut_off, 1.0)


def slow_critical_worse(better: int, n: int, alpha_pct: float, delta: float) -> int:
    """The largest worse count whose statistic's mass stays within delta - gamma (every candidate at once)."""
    gamma, risk = delta * NUISANCE_SHARE, alpha_pct / 100
    worse = np.arange(min(better + allowed_loss(alpha_pct, n), n - better) + 1)
    cuts = statistic(worse, better, n, risk)
    worse, cuts = worse[cuts < 0], cuts[cuts < 0]
    ok = np.flatnonzero(slow_null_mass(better, n, risk, gamma, cuts) <= delta - gamma)
    return int(worse[ok[-1]]) if len(ok) else -1


def slow_upper_bound(worse: int, better: int, n: int, delta: float) -> float:
    """The least risk the test rejects, to 1 / (8 n): doubling steps up from the observed loss, then bisection."""
    gamma = delta * NUISANCE_SHARE

    def rejects(risk: float) -> bool:
        value = float(statistic(worse, better, n, risk))
        return value < 0 and slow_null_mass(better, n, risk, gamma, np.array([value]))[0] <= delta - gamma

    low, step = (worse - better) / n, 1 / n
    while not rejects(low + step):
        low, step = low + step, 2 * step
        if low + step >= 1:
            return 1.0
    high = low + step
    while high - low > 1 / (8 * n):
        middle = (low + high) / 2
        low, high = (low, middle) if rejects(middle) else (middle, high)
    return high


def test_fast_critical_count_equals_the_full_grid_on_random_counts() -> None:
    rng = np.random.default_rng(23)
    for _ in range(14):
        n = int(rng.integers(30, 2500))
        better = int(rng.integers(0, max(2, n // 12)))
        alpha_pct = float(rng.choice([0.3, 1.0, 2.5, 5.0]))
        delta = float(rng.choice([0.1, 0.05, 0.01]))
        expected = slow_critical_worse(better, n, alpha_pct, delta)
        for worse in (expected + 1, max(expected, 0)):  # one candidate at a time, before the critical count is known
            if worse + better <= n:
                assert certifies(worse, better, n, alpha_pct, delta) == (worse <= expected), (better, n, worse)
        assert critical_worse(better, n, alpha_pct, delta) == expected, (better, n, alpha_pct, delta)


def test_fast_upper_bound_equals_the_full_grid_on_random_counts() -> None:
    rng = np.random.default_rng(7)
    for _ in range(6):
        n = int(rng.integers(20, 400))
        better = int(rng.integers(0, max(2, n // 10)))
        worse = int(rng.integers(0, max(2, n // 10)))
        delta = float(rng.choice([0.1, 0.05]))
        assert loss_upper_bound(worse, better, n, delta) == slow_upper_bound(worse, better, n, delta), (worse, better, n)
