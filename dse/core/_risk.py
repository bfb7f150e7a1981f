"""A certified accuracy-loss budget: a finite-sample upper bound on the paired loss, and Learn-then-Test selection.

**The loss.** Against the reference (the big net), one sample's loss is
l = [wrong now and right before] - [right now and wrong before], in {-1, 0, 1}; a sample escalated to the
reference has l = 0. The risk is R = E[l] = p_worse - p_better with p_worse = P(l = 1), p_better = P(l = -1).

**The bound.** Over n i.i.d. calibration samples the integer counts K_worse and K_better are each exactly
Binomial(n, p_worse) and Binomial(n, p_better), whatever their dependence. We take the Clopper-Pearson upper
bound U of p_worse at level delta_worse = 0.8 delta and the Clopper-Pearson lower bound L of p_better at level
delta_better = 0.2 delta, and certify R <= U - L. Each is an exact binomial tail bound, P(p_worse > U) <= delta_worse
and P(p_better < L) <= delta_better, so by the union bound P(R > U - L) <= delta for any joint law of the pair: the
bound holds for a loss in [-1, 1] and for the paired difference, with no normal approximation and no assumption
about the networks. Why not Hoeffding-Bentkus on (l + 1) / 2 in [0, 1]: its worst case spreads the variable over
{0, 1} (variance 1/4), while the paired loss is 0 on about 99% of samples; at n = 5,000 and delta = 0.1 it needs
the calibration loss about 1.5 points below alpha, far beyond a 0.3% budget. The two binomial bounds shrink with
how rare disagreements are (a margin of about z (sqrt K_worse + sqrt K_better) / n); a variance-adaptive betting
bound (Waudby-Smith and Ramdas) measured the same on typical counts. The 0.8 / 0.2 split of delta is fixed in
advance (the worse count is the larger one; splits from 0.6 to 0.9 differ by under 0.01 points).

**Selection** (Learn then Test, Angelopoulos et al.). Each candidate threshold t_j is the null hypothesis
"R(t_j) > alpha", rejected when U - L <= alpha (a level-delta test). The candidates, fixed before the calibration
rows are seen and ordered from safe (most escalation) to aggressive, are tested in order at level delta, stopping at
the first not rejected; fixed-sequence testing keeps the family-wise error at delta, so with probability >= 1 - delta
every certified threshold has R <= alpha, and we return the most aggressive (cheapest). Across S cascade structures:
"bonferroni" tests each structure at delta / S on all calibration rows; "split" chooses the structure on a random
part of the rows and certifies it alone, at delta, on the other part. The probability is over the calibration draw:
a finite held-out set still scatters around R.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Sequence

import numpy as np

WORSE_SHARE = 0.8  # part of delta spent on the upper bound of p_worse; the rest on the lower bound of p_better
_TOLERANCE = 1e-12  # bisection width of the Clopper-Pearson bounds (each rounded outwards)

Composition = Literal["bonferroni", "split"]


class RiskError(ValueError):
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


@functools.lru_cache(maxsize=1 << 16)
def binomial_lower(k: int, n: int, delta: float) -> float:
    """Clopper-Pearson lower bound: P(p < bound) <= delta when k ~ Binomial(n, p); rounded downwards."""
    if k <= 0:
        return 0.0
    low, high = 0.0, k / n
    while high - low > _TOLERANCE:
        middle = (low + high) / 2
        if binomial_sf(k, n, middle) < delta:
            low = middle
        else:
            high = middle
    return low


def loss_upper_bound(worse: int, better: int, n: int, delta: float, worse_share: float = WORSE_SHARE) -> float:
    """Upper bound on the risk p_worse - p_better holding with probability >= 1 - delta (see the module text)."""
    _check_level("delta", delta)
    _check_level("worse_share", worse_share)
    if not (0 <= worse and 0 <= better and worse + better <= n):
        raise RiskError(f"counts must satisfy 0 <= worse + better <= n, got worse={worse}, better={better}, n={n}")
    return (binomial_upper(int(worse), int(n), delta * worse_share)
            - binomial_lower(int(better), int(n), delta * (1 - worse_share)))


def loss_counts(margin: np.ndarray, little_correct: np.ndarray, big_correct: np.ndarray,
                thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold (margin >= t stays on the little net): kept samples the little net gets wrong and the
    reference right (worse), and the reverse (better); integer counts."""
    margin = np.asarray(margin, dtype=np.float64)
    order = np.argsort(-margin, kind="stable")
    little, big = np.asarray(little_correct, bool)[order], np.asarray(big_correct, bool)[order]
    kept = np.searchsorted(-margin[order], -np.asarray(thresholds, dtype=np.float64), side="right")
    worse = np.r_[0, np.cumsum(~little & big)]
    better = np.r_[0, np.cumsum(little & ~big)]
    return worse[kept], better[kept]


def allowed_loss(alpha_pct: float, n: int) -> int:
    """The largest integer net loss count within alpha_pct % of n samples (exact: alpha read as a decimal)."""
    return math.floor(Fraction(str(alpha_pct)) * n / 100)


@dataclass(frozen=True)
class Structure:
    """One two-stage cascade on the calibration rows: the little net's margin and correctness, the reference's
    correctness, and the energy of one inference of each stage (pJ)."""

    name: str
    margin: np.ndarray
    little_correct: np.ndarray
    big_correct: np.ndarray
    little_energy_pj: float
    big_energy_pj: float

    def __post_init__(self) -> None:
        """All row arrays are one sample each."""
        shapes = {np.shape(self.margin), np.shape(self.little_correct), np.shape(self.big_correct)}
        if len(shapes) != 1 or len(shapes.pop()) != 1:
            raise RiskError(f"structure {self.name}: margin, little_correct and big_correct must be equal-length 1-D")

    @property
    def rows(self) -> int:
        """Number of calibration samples."""
        return len(self.margin)

    def take(self, rows: np.ndarray) -> "Structure":
        """The same structure on a subset of its rows."""
        return Structure(self.name, self.margin[rows], self.little_correct[rows], self.big_correct[rows],
                         self.little_energy_pj, self.big_energy_pj)

    def energy_pj(self, threshold: float) -> float:
        """Mean energy per inference on these rows: the little net always, the big one below the threshold."""
        reach = float(np.mean(np.asarray(self.margin, dtype=np.float64) < threshold))
        return self.little_energy_pj + reach * self.big_energy_pj


@dataclass(frozen=True)
class RiskPoint:
    """One (structure, threshold) on the rows it was assessed on: for the report and the exports."""

    structure: int  # index into the structures given
    threshold: float
    rows: int
    calib_loss_pct: float  # (worse - better) / rows, in %
    upper_bound_pct: float  # holds with probability >= 1 - delta
    energy_pj: float  # mean per inference on those rows


def assess(structure: Structure, threshold: float, delta: float, index: int = 0,
           worse_share: float = WORSE_SHARE) -> RiskPoint:
    """Calibration loss and certified upper bound of one threshold on a structure's rows."""
    worse, better = loss_counts(structure.margin, structure.little_correct, structure.big_correct, [threshold])
    n = structure.rows
    return RiskPoint(index, float(threshold), n, 100.0 * (int(worse[0]) - int(better[0])) / n,
                     100.0 * loss_upper_bound(int(worse[0]), int(better[0]), n, delta, worse_share),
                     structure.energy_pj(threshold))


def fixed_sequence(worse: np.ndarray, better: np.ndarray, n: int, alpha_pct: float, delta: float,
                   worse_share: float = WORSE_SHARE) -> int:
    """How many leading candidates are certified: each tested at level delta, in order, until one fails."""
    alpha = alpha_pct / 100
    for j, (w, b) in enumerate(zip(worse, better)):
        if loss_upper_bound(int(w), int(b), n, delta, worse_share) > alpha:
            return j
    return len(worse)


def certify(structure: Structure, thresholds: np.ndarray, alpha_pct: float, delta: float, index: int = 0,
            worse_share: float = WORSE_SHARE) -> RiskPoint | None:
    """The most aggressive threshold of `thresholds` (safe to aggressive, fixed before seeing these rows)
    certified by fixed-sequence testing at level delta; None when not even the first is."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if np.any(np.diff(thresholds) > 0):
        raise RiskError("thresholds must run from safe to aggressive (non-increasing)")
    worse, better = loss_counts(structure.margin, structure.little_correct, structure.big_correct, thresholds)
    certified = fixed_sequence(worse, better, structure.rows, alpha_pct, delta, worse_share)
    return assess(structure, thresholds[certified - 1], delta, index, worse_share) if certified else None


def _cheapest(points: Sequence[RiskPoint | None]) -> RiskPoint | None:
    """The certified point of least energy (first on ties), or None."""
    found = [p for p in points if p is not None]
    return min(found, key=lambda p: p.energy_pj) if found else None


def select_certified(structures: Sequence[Structure], thresholds: np.ndarray, alpha_pct: float, delta: float,
                     composition: Composition = "bonferroni", select_fraction: float = 0.5, seed: int = 0,
                     worse_share: float = WORSE_SHARE) -> RiskPoint | None:
    """The cheapest certified (structure, threshold) over several structures sharing the same calibration rows.

    "bonferroni": every structure certified at delta / S on all rows. "split": a random `select_fraction` of
    the rows picks the structure (the cheapest certified there at delta), the other rows certify it at delta.
    """
    if not structures:
        raise RiskError("select_certified needs at least one structure")
    if len({s.rows for s in structures}) != 1:
        raise RiskError("every structure must have the same calibration rows")
    if composition == "bonferroni":
        return _cheapest([certify(s, thresholds, alpha_pct, delta / len(structures), i, worse_share)
                          for i, s in enumerate(structures)])
    if composition != "split":
        raise RiskError(f"composition must be 'bonferroni' or 'split', got {composition!r}")
    _check_level("select_fraction", select_fraction)
    order = np.random.default_rng(seed).permutation(structures[0].rows)
    cut = round(select_fraction * len(order))
    if not 0 < cut < len(order):
        raise RiskError(f"select_fraction={select_fraction} leaves no rows for one part of {len(order)}")
    chosen = _cheapest([certify(s.take(order[:cut]), thresholds, alpha_pct, delta, i, worse_share)
                        for i, s in enumerate(structures)])
    if chosen is None:
        return None
    return certify(structures[chosen.structure].take(order[cut:]), thresholds, alpha_pct, delta, chosen.structure,
                   worse_share)
