"""A certified accuracy-loss budget: an exact finite-sample test of the paired loss, and Learn-then-Test selection.

**The loss.** Against the reference (the big net), one sample's loss is
l = [wrong now and right before] - [right now and wrong before], in {-1, 0, 1}; a sample escalated to the
reference has l = 0. The risk is R = E[l] = p_worse - p_better, p_worse = P(l = 1), p_better = P(l = -1).

**The test.** Over n i.i.d. calibration samples the integer counts (K_worse, K_better, rest) are exactly
Multinomial(n, (p_worse, p_better, 1 - p_worse - p_better)): the only model of a paired loss in {-1, 0, 1}. The null
hypothesis "R >= alpha" is rejected when the studentised net loss T = (K_worse - K_better - n alpha) /
sqrt(n alpha + 2 K_better + 1) is improbably small, computed exactly (no normal approximation) and maximised over
the unknown p_better (an exact unconditional test): the p-value is sup P(T <= t_observed) + gamma, the sup over
laws with R = alpha and p_better up to its Clopper-Pearson upper bound at level gamma (Berger and Boos 1994;
gamma = delta / 20). It is valid because (1) a law with R > alpha puts more samples on "worse" than the law with
the same p_better and R = alpha (couple the samples), and T grows with K_worse; (2) the true p_better is outside
the confidence set with probability <= gamma; (3) the sup over a continuum is bounded by a finite cover: within a
cell [b, b'] of p_better, the law (b + alpha, b') has fewer worse and more better samples than every law of the
cell, and {T <= t < 0} is closed under fewer worse / more better (T is decreasing in K_better where negative,
since n alpha + K_better - K_worse <= n alpha + 2 K_better + 1), so that corner's probability bounds the cell's.
A law's probability is summed over the count of better samples (log-space binomial terms) times the
binomial tail of the worse count given it (`scipy.special.bdtr`), the probability mass beyond the summed counts is
added, and float ties count as reaching the cut. Why this and not Hoeffding-Bentkus on (l + 1) / 2 in [0, 1]: that bound's
worst case spreads the loss over {-1, 1} (variance 1), while the paired loss is 0 on about 99% of samples; at
n = 5,000 and delta = 0.1 it needs the calibration loss 2.5 points below alpha, far beyond a 0.3% budget.
A union of two Clopper-Pearson bounds (p_worse up, p_better down, delta split) adapts to how rare disagreements
are and is simple, but pays sqrt(K_worse) + sqrt(K_better) instead of sqrt(K_worse + K_better) and splits delta:
at 25 worse and 10 better of 5,000 (delta = 0.1) it certifies 0.58%, a betting bound (Waudby-Smith and Ramdas)
0.58%, this test 0.48% (the normal approximation with z = 1.64 gives 0.49%, without any guarantee).

**Selection** (Learn then Test, Angelopoulos et al.). Each candidate threshold t_j is the null hypothesis
"R(t_j) >= alpha". The candidates, fixed before the calibration rows are seen and ordered from safe (most
escalation) to aggressive, are tested in order at level delta, stopping at the first not rejected; fixed-sequence
testing keeps the family-wise error at delta, so with probability >= 1 - delta every certified threshold has
R < alpha, and we return the most aggressive (cheapest): the guarantee bounds the risk R, the expected loss on
new data from the same distribution, not the loss on any finite held-out set. Across S cascade structures:
"bonferroni" tests each structure at delta / S on all calibration rows; "split" chooses the structure on a random
part of the rows and certifies it alone, at delta, on the other part. The probability is over the calibration
draw: a finite held-out set still scatters around R. The reported upper bound inverts the same test (the least
risk it rejects, to 1 / (8 n)): valid for a point fixed before the rows were seen, only a descriptive estimate at a
point chosen on them (as the certified point is). On the full-MNIST benchmark (`benchmarks/risk_control.py`, 5,000
calibration rows, 8 first stages) the two compositions cost the same to 0.2 points of energy saving, and the
guarantee about 0.9 points vs z = 1.64.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Sequence

import numpy as np
from scipy.special import bdtr

from costmodel import UserError

NUISANCE_SHARE = 0.05  # part of delta spent on the confidence set of p_better (Berger-Boos gamma)
_TOLERANCE = 1e-12  # bisection width of the Clopper-Pearson bounds (each rounded outwards)
_CELLS = 256  # most cells covering the nuisance range (a cell's width is what its bound gives away in risk)
_NEGLIGIBLE = 1e-20  # P(K_better = k) below this is counted whole, not times its conditional worse tail
_TIE = 1e-9  # statistic values this close to a cut count as reaching it (conservative on float ties)

Composition = Literal["bonferroni", "split"]


class RiskError(UserError):
    """Bad arguments to the risk-control functions."""


def _check_level(name: str, value: float) -> None:
    """Levels and shares are probabilities strictly inside (0, 1)."""
    if not (isinstance(value, (int, float)) and 0 < value < 1):
        raise RiskError(f"{name} must be in (0, 1), got {value!r}")


@functools.lru_cache(maxsize=8)
def _log_factorials(n: int) -> np.ndarray:
    """log(i!) for i = 0..n (math.lgamma, cached per n)."""
    return np.array([math.lgamma(i + 1) for i in range(n + 1)])


def _log_pmf(ks: np.ndarray, n: int, p: float) -> np.ndarray:
    """log P(Binomial(n, p) = k) for each k, for 0 < p < 1."""
    log_fact = _log_factorials(n)
    return log_fact[n] - log_fact[ks] - log_fact[n - ks] + ks * math.log(p) + (n - ks) * math.log1p(-p)


def _tail(ks: np.ndarray, n: int, p: float) -> float:
    """Sum of the binomial pmf over `ks`, in log space (no underflow for tiny tails)."""
    if len(ks) == 0:
        return 0.0
    log_terms = _log_pmf(ks, n, p)
    top = log_terms.max()
    return float(min(1.0, math.exp(top) * np.exp(log_terms - top).sum()))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k)."""
    if k >= n or p <= 0.0:
        return 1.0 if k >= 0 else 0.0
    if k < 0 or p >= 1.0:
        return 0.0
    return _tail(np.arange(k + 1), n, p)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) >= k)."""
    return 1.0 - binomial_cdf(k - 1, n, p) if k <= 0 or p <= 0.0 or p >= 1.0 else _tail(np.arange(k, n + 1), n, p)


@functools.lru_cache(maxsize=1 << 16)
def binomial_upper(k: int, n: int, delta: float) -> float:
    """Clopper-Pearson upper bound: P(p > bound) <= delta when k ~ Binomial(n, p); rounded upwards."""
    if k >= n:
        return 1.0
    low, high = k / n, 1.0
    while high - low > _TOLERANCE:
        middle = (low + high) / 2
        if binomial_cdf(k, n, middle) > delta:
            low = middle
        else:
            high = middle
    return high


def _reach(n: int, p: float) -> int:
    """A count that Binomial(n, p) exceeds only with negligible probability (8 standard deviations out)."""
    return min(n, math.ceil(n * p + 8 * math.sqrt(n * p * (1 - p)) + 8))


def statistic(worse: np.ndarray, better: np.ndarray, n: int, risk: float) -> np.ndarray:
    """Studentised net loss (worse - better - n risk) / sqrt(max(n risk, 0) + 2 better + 1); small values speak
    against "risk >= `risk`". Increasing in worse and, where negative, decreasing in better."""
    worse, better = np.asarray(worse, dtype=np.float64), np.asarray(better, dtype=np.float64)
    return (worse - better - n * risk) / np.sqrt(max(n * risk, 0.0) + 2 * better + 1)


def _law_mass(n: int, worse_rates: np.ndarray, better_rates: np.ndarray, ks: np.ndarray,
              limits: np.ndarray) -> np.ndarray:
    """Per law Multinomial(n, (worse_rate, better_rate, rest)), an upper bound on P(K_better = k and K_worse <=
    limits[k] for some k in `ks`): sum over k of P(K_better = k) P(Binomial(n - k, worse / (1 - better)) <=
    limits[k]), with the terms of P(K_better = k) below `_NEGLIGIBLE` counted whole (an upper bound on their share)."""
    log_fact = _log_factorials(n)
    b = better_rates[:, None]
    share = np.exp(log_fact[n] - log_fact[ks] - log_fact[n - ks] + ks * np.log(b) + (n - ks) * np.log1p(-b))
    rate = np.minimum(worse_rates / (1 - better_rates), 1.0)[:, None]
    below = np.broadcast_to(limits < 0, share.shape)
    whole = np.broadcast_to(limits >= n - ks, share.shape)
    cdf = np.where(whole, 1.0, 0.0)
    tail = (share >= _NEGLIGIBLE) & ~below & ~whole
    rows, cols = np.nonzero(tail)
    cdf[rows, cols] = bdtr(limits[cols], n - ks[cols], rate[rows, 0])
    return np.where(share < _NEGLIGIBLE, share, share * cdf).sum(axis=1)


def _worse_limits(ks: np.ndarray, n: int, risk: float, cut: float, top_worse: int) -> np.ndarray:
    """Per better count k, the most worse samples (up to `top_worse` and n - k) whose statistic reaches at most
    `cut` (float ties count as reaching it); -1 where none does. The statistic is increasing in worse."""
    level = cut + _TIE
    worse = np.floor(ks + n * risk + level * np.sqrt(max(n * risk, 0.0) + 2 * ks + 1)).astype(np.int64)
    worse = np.clip(worse, -1, n - ks)
    while np.any(high := (worse >= 0) & (statistic(worse, ks, n, risk) > level)):
        worse[high] -= 1
    while np.any(low := (worse < n - ks) & (statistic(worse + 1, ks, n, risk) <= level)):
        worse[low] += 1
    return np.minimum(worse, top_worse)


def _null_rejects(better: int, n: int, risk: float, gamma: float, cut: float, level: float) -> bool:
    """Whether P(statistic <= cut) <= level (cut < 0) under every law with risk `risk` whose p_better lies in the
    1 - gamma confidence set [0, Clopper-Pearson upper bound of `better`].

    That set is covered by cells [b_g, b_g+1] of width 1 / (8 n) (wider when that makes over `_CELLS`).
    Coupling the samples, the law (b_g + risk, b_g+1) has no more worse and no fewer better samples than any
    law of the cell, and {statistic <= c < 0} keeps every point with fewer worse or more better samples: its
    mass bounds theirs. Each law's mass is summed over counts up to `_reach` of the largest rates, plus the mass cut
    off (the sf of a binomial grows with its rate). The cells are visited as a binary tree: by the same coupling,
    the corner law (b_i + risk, b_j) of a merged cell [b_i, b_j] bounds every cell in it (to one more mass cut off),
    so a merged cell under the level clears all its cells, and only cells whose merged cells exceed it are summed.
    """
    low = max(0.0, -risk)
    high = min(binomial_upper(better, n, gamma), (1 - risk) / 2)
    if high <= low:
        return True  # no law with this risk in the confidence set
    cells = min(math.ceil((high - low) * 8 * n), _CELLS)
    edges = np.minimum(low + np.arange(cells + 2) * max(1 / (8 * n), (high - low) / cells), (1 - risk) / 2)
    edges = edges[np.r_[True, edges[1:] > edges[:-1]]]  # the cells of positive width (the cap repeats last)
    top_worse, top_better = _reach(n, float(edges[-2]) + risk), _reach(n, float(edges[-1]))
    cut_off = binomial_sf(top_worse + 1, n, float(edges[-2]) + risk) + binomial_sf(top_better + 1, n, float(edges[-1]))
    ks = np.arange(top_better + 1)
    limits = _worse_limits(ks, n, risk, cut, top_worse)
    nodes = [(0, len(edges) - 1)]
    while nodes:
        first, last = np.array(nodes).T
        mass = _law_mass(n, edges[first] + risk, edges[last], ks, limits)
        split = []
        for (i, j), m in zip(nodes, mass):
            if j - i == 1:
                if min(m + cut_off, 1.0) > level:
                    return False
            elif m + 2 * cut_off > level:
                split += [(i, (i + j) // 2), ((i + j) // 2, j)]
        nodes = split
    return True


class _Critical:
    """The critical worse count of one (better, n, alpha, delta), narrowed lazily: the test is monotone in worse,
    so every count up to `passed` certifies and none from `failed` on."""

    def __init__(self, better: int, n: int, alpha_pct: float, delta: float) -> None:
        self.better, self.n, self.risk = better, n, alpha_pct / 100
        self.gamma = delta * NUISANCE_SHARE
        self.level = delta - self.gamma
        top = min(better + allowed_loss(alpha_pct, n), n - better)
        while top >= 0 and statistic(top, better, n, self.risk) >= 0:
            top -= 1  # only a negative statistic can speak against the null
        self.passed, self.failed = -1, top + 1

    def certifies(self, worse: int) -> bool:
        """Whether `worse` of n samples with this many better certify the risk."""
        if worse <= self.passed:
            return True
        if worse >= self.failed:
            return False
        cut = float(statistic(worse, self.better, self.n, self.risk))
        if _null_rejects(self.better, self.n, self.risk, self.gamma, cut, self.level):
            self.passed = worse
            return True
        self.failed = worse
        return False

    def value(self) -> int:
        """The most worse samples that certify (-1: none), by bisection."""
        while self.failed - self.passed > 1:
            self.certifies((self.passed + self.failed) // 2)
        return self.passed


@functools.lru_cache(maxsize=1 << 14)
def _critical(better: int, n: int, alpha_pct: float, delta: float) -> _Critical:
    """The shared, lazily narrowed critical count of these arguments (many candidates share a better count)."""
    _check_level("delta", delta)
    return _Critical(better, n, alpha_pct, delta)


def critical_worse(better: int, n: int, alpha_pct: float, delta: float) -> int:
    """The most `worse` samples that, with `better` of n, certify risk <= alpha at level delta (-1: none)."""
    return _critical(int(better), int(n), alpha_pct, delta).value()


def certifies(worse: int, better: int, n: int, alpha_pct: float, delta: float) -> bool:
    """Whether counts (worse, better) of n samples certify risk <= alpha_pct % at level delta."""
    _check_counts(worse, better, n)
    return _critical(int(better), int(n), alpha_pct, delta).certifies(int(worse))


def _check_counts(worse: int, better: int, n: int) -> None:
    """Counts of one sample set."""
    if not (0 <= worse and 0 <= better and worse + better <= n):
        raise RiskError(f"counts must satisfy 0 <= worse + better <= n, got worse={worse}, better={better}, n={n}")


@functools.lru_cache(maxsize=1 << 12)
def loss_upper_bound(worse: int, better: int, n: int, delta: float) -> float:
    """Upper confidence bound on the risk at level delta: the least risk the test still rejects (to 1 / (8 n))."""
    _check_level("delta", delta)
    _check_counts(worse, better, n)
    gamma = delta * NUISANCE_SHARE

    def rejects(risk: float) -> bool:
        value = float(statistic(worse, better, n, risk))
        return value < 0 and _null_rejects(better, n, risk, gamma, value, delta - gamma)

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


def loss_counts(margin: np.ndarray, first_correct: np.ndarray, reference_correct: np.ndarray,
                thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold (margin >= t stays on the first stage): kept samples the first stage gets wrong and the
    reference right (worse), and the reverse (better); integer counts."""
    margin = np.asarray(margin, dtype=np.float64)
    order = np.argsort(-margin, kind="stable")
    first, reference = np.asarray(first_correct, bool)[order], np.asarray(reference_correct, bool)[order]
    kept = np.searchsorted(-margin[order], -np.asarray(thresholds, dtype=np.float64), side="right")
    worse = np.r_[0, np.cumsum(~first & reference)]
    better = np.r_[0, np.cumsum(first & ~reference)]
    return worse[kept], better[kept]


def allowed_loss(alpha_pct: float, n: int) -> int:
    """The largest integer net loss count within alpha_pct % of n samples (exact: alpha read as a decimal)."""
    return math.floor(Fraction(str(alpha_pct)) * n / 100)


@dataclass(frozen=True)
class Structure:
    """One two-stage cascade on the calibration rows: the first stage's margin and correctness, the reference's
    correctness, and the energy of one inference of each stage (pJ)."""

    name: str
    margin: np.ndarray
    first_correct: np.ndarray
    reference_correct: np.ndarray
    first_energy_pj: float
    second_energy_pj: float

    def __post_init__(self) -> None:
        """All row arrays are one sample each."""
        shapes = {np.shape(self.margin), np.shape(self.first_correct), np.shape(self.reference_correct)}
        if len(shapes) != 1 or len(shapes.pop()) != 1:
            raise RiskError(f"structure {self.name}: margin, first_correct and reference_correct must be equal-length 1-D")

    @property
    def rows(self) -> int:
        """Number of calibration samples."""
        return len(self.margin)

    def take(self, rows: np.ndarray) -> "Structure":
        """The same structure on a subset of its rows."""
        return Structure(self.name, self.margin[rows], self.first_correct[rows], self.reference_correct[rows],
                         self.first_energy_pj, self.second_energy_pj)

    def energy_pj(self, threshold: float) -> float:
        """Mean energy per inference on these rows: the first stage always, the second below the threshold."""
        reach = float(np.mean(np.asarray(self.margin, dtype=np.float64) < threshold))
        return self.first_energy_pj + reach * self.second_energy_pj


@dataclass(frozen=True)
class RiskPoint:
    """One (structure, threshold) on the rows it was assessed on: for the report and the exports."""

    structure: int  # index into the structures given
    threshold: float
    rows: int
    worse: int  # kept samples the first stage gets wrong and the reference right
    better: int  # kept samples the first stage gets right and the reference wrong
    delta: float
    energy_pj: float  # mean per inference on those rows

    @property
    def calib_loss_pct(self) -> float:
        """Net loss on these rows, in % of them."""
        return 100.0 * (self.worse - self.better) / self.rows

    @functools.cached_property
    def upper_bound_pct(self) -> float:
        """Upper bound on the risk, in % (computed on first use): holds with probability >= 1 - delta for a point
        fixed before these rows were seen; a descriptive estimate for a point chosen on them."""
        return 100.0 * loss_upper_bound(self.worse, self.better, self.rows, self.delta)


def assess(structure: Structure, threshold: float, delta: float, index: int = 0) -> RiskPoint:
    """Calibration loss and certified upper bound of one threshold on a structure's rows."""
    worse, better = loss_counts(structure.margin, structure.first_correct, structure.reference_correct, [threshold])
    return RiskPoint(index, float(threshold), structure.rows, int(worse[0]), int(better[0]), delta,
                     structure.energy_pj(threshold))


def fixed_sequence(worse: np.ndarray, better: np.ndarray, n: int, alpha_pct: float, delta: float) -> int:
    """How many leading candidates are certified: each tested at level delta, in order, until one fails."""
    for j, (w, b) in enumerate(zip(worse, better)):
        if not certifies(int(w), int(b), n, alpha_pct, delta):
            return j
    return len(worse)


def certify(structure: Structure, thresholds: np.ndarray, alpha_pct: float, delta: float,
            index: int = 0) -> RiskPoint | None:
    """The most aggressive threshold of `thresholds` (safe to aggressive, fixed before seeing these rows)
    certified by fixed-sequence testing at level delta; None when not even the first is."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if np.any(np.diff(thresholds) > 0):
        raise RiskError("thresholds must run from safe to aggressive (non-increasing)")
    worse, better = loss_counts(structure.margin, structure.first_correct, structure.reference_correct, thresholds)
    certified = fixed_sequence(worse, better, structure.rows, alpha_pct, delta)
    return assess(structure, thresholds[certified - 1], delta, index) if certified else None


def _cheapest(points: Sequence[RiskPoint | None]) -> RiskPoint | None:
    """The certified point of least energy (first on ties), or None."""
    found = [p for p in points if p is not None]
    return min(found, key=lambda p: p.energy_pj) if found else None


def select_certified(structures: Sequence[Structure], thresholds: np.ndarray, alpha_pct: float, delta: float,
                     composition: Composition = "bonferroni", select_fraction: float = 0.5,
                     seed: int = 0) -> RiskPoint | None:
    """The cheapest certified (structure, threshold) over several structures sharing the same calibration rows.

    "bonferroni": every structure certified at delta / S on all rows. "split": a random `select_fraction` of
    the rows picks the structure (the cheapest certified there at delta), the other rows certify it at delta.
    """
    if not structures:
        raise RiskError("select_certified needs at least one structure")
    if len({s.rows for s in structures}) != 1:
        raise RiskError("every structure must have the same calibration rows")
    if composition == "bonferroni":
        return _cheapest([certify(s, thresholds, alpha_pct, delta / len(structures), i)
                          for i, s in enumerate(structures)])
    if composition != "split":
        raise RiskError(f"composition must be 'bonferroni' or 'split', got {composition!r}")
    _check_level("select_fraction", select_fraction)
    order = np.random.default_rng(seed).permutation(structures[0].rows)
    cut = round(select_fraction * len(order))
    if not 0 < cut < len(order):
        raise RiskError(f"select_fraction={select_fraction} leaves no rows for one part of {len(order)}")
    chosen = _cheapest([certify(s.take(order[:cut]), thresholds, alpha_pct, delta, i)
                        for i, s in enumerate(structures)])
    if chosen is None:
        return None
    return certify(structures[chosen.structure].take(order[cut:]), thresholds, alpha_pct, delta, chosen.structure)
