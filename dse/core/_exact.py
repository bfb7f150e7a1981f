"""Exact threshold fronts, exact loss limits and a fast batch evaluator for one cascade structure (pure numpy).

A cascade has S stages; margins and correct are (S, N). A sample leaves at the first stage k < S-1 whose margin
is >= t_k, else at the last stage, and pays cost_0 + ... + cost_k, where cost is (S,) per stage or (S, N) per
sample. Errors are integer counts of wrong final answers; energies are means per sample in the input's unit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

DEFAULT_MEMORY_BYTES = 256 * 2**20
SEED_MEMORY_BYTES = 16 * 2**20  # the evaluator that prices exact_front_3's seeds


@dataclass(frozen=True)
class ThresholdFront:
    """The (energy, errors) Pareto front of one cascade over all threshold vectors.

    thresholds (P, S-1) float64, errors (P,) int64 wrong final answers, energy (P,) float64 mean cost per sample;
    sorted by energy ascending with errors strictly decreasing. Each threshold is the smallest margin it accepts
    (+inf: accepts none), and among vectors with equal computed (energy, errors) the lexicographically largest
    threshold vector (the one that escalates most at the earliest stage) is kept, so the front is deterministic.
    """

    thresholds: np.ndarray
    errors: np.ndarray
    energy: np.ndarray


@dataclass(frozen=True)
class BatchResult:
    """Outcome of B threshold vectors on one cascade: (B,) arrays, and (B, S) for `reach_fraction`."""

    errors: np.ndarray  # int64 wrong final answers
    accuracy: np.ndarray
    energy: np.ndarray  # mean per sample
    latency: np.ndarray  # mean per sample
    reach_fraction: np.ndarray  # fraction of samples that ran each stage


def allowed_extra_errors(limit_pct: float | str, n: int) -> int:
    """Largest integer e with e / n * 100 <= limit_pct, exact in the decimal the user wrote (capped at n).

    `Fraction(str(limit_pct))` reads 1.0 as exactly 1, so 10 errors in 1,000 are within a 1.0 % limit, which the
    float loss from accuracies, 100 * (1 - 990 / 1000) = 1.0000000000000009, would reject.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer sample count, got {n!r}")
    if isinstance(limit_pct, bool):
        raise ValueError(f"limit_pct must be a number of percent, got {limit_pct!r}")
    try:
        limit = Fraction(str(limit_pct))
    except (ValueError, ZeroDivisionError) as error:
        raise ValueError(f"limit_pct must be a finite number of percent, got {limit_pct!r}") from error
    if limit < 0:
        raise ValueError(f"limit_pct must be >= 0, got {limit_pct!r}")
    return min(int(n), math.floor(limit * int(n) / 100))


def _cascade_arrays(margins: np.ndarray, correct: np.ndarray, *costs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Validated float64 margins (S, N), int64 wrong (S, N), and each cost broadcast to float64 (S, N)."""
    margins = np.asarray(margins, dtype=np.float64)
    if margins.ndim != 2 or margins.shape[0] < 1 or margins.shape[1] < 1:
        raise ValueError(f"margins must be (stages, samples) with both >= 1, got shape {margins.shape}")
    if not np.isfinite(margins).all():
        raise ValueError("margins must be finite (no NaN or inf)")
    correct = np.asarray(correct)
    if correct.shape != margins.shape:
        raise ValueError(f"correct must have the margins' shape {margins.shape}, got {correct.shape}")
    if not np.isin(correct, (0, 1)).all():
        raise ValueError("correct must hold only booleans or 0/1")
    out = [margins, 1 - correct.astype(np.int64)]
    for cost in costs:
        cost = np.asarray(cost, dtype=np.float64)
        if cost.shape not in ((margins.shape[0],), margins.shape):
            raise ValueError(f"cost must be (stages,) = {margins.shape[:1]} or (stages, samples) = {margins.shape}, "
                             f"got {cost.shape}")
        if not np.isfinite(cost).all() or (cost < 0).any():
            raise ValueError("cost must be finite and >= 0")
        out.append(np.broadcast_to(cost.reshape(cost.shape[0], -1), margins.shape).astype(np.float64))
    return tuple(out)


def _require_stages(margins: np.ndarray, stages: int) -> None:
    """Reject a cascade whose stage count differs from what the solver handles."""
    if margins.shape[0] != stages:
        raise ValueError(f"this solver needs {stages} stages, got {margins.shape[0]}")


def _sweep_sorted(margin: np.ndarray, accept_errors: np.ndarray, reject_errors: np.ndarray,
                  accept_cost: np.ndarray | float, reject_cost: np.ndarray | float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For t = +inf, then every distinct margin from high to low (inputs sorted by margin descending): t, and the
    total errors and cost when samples with margin >= t take the accept values and the others the reject values
    (a cost may be one number for every sample)."""
    n = len(margin)
    last_of_tie = np.r_[np.flatnonzero(margin[1:] != margin[:-1]), n - 1] if n else np.zeros(0, np.int64)
    accepted = np.r_[0, last_of_tie + 1]
    errors = int(reject_errors.sum()) + np.r_[0, np.cumsum(accept_errors - reject_errors)[last_of_tie]]
    # Two sums of non-negative terms (accepted prefix, rejected suffix), so cost never drops below a subset's.
    kept = (accept_cost * accepted if np.isscalar(accept_cost)
            else np.r_[0.0, np.cumsum(accept_cost)[last_of_tie]])
    rejected = (reject_cost * (n - accepted) if np.isscalar(reject_cost)
                else np.r_[np.cumsum(reject_cost[::-1])[::-1], 0.0][accepted])
    return np.r_[np.inf, margin[last_of_tie]], errors.astype(np.int64), kept + rejected


def _pareto(energy: np.ndarray, errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Indices of the Pareto points by energy ascending, errors strictly decreasing; ties keep the lexicographically
    largest threshold vector."""
    keys = tuple(-thresholds[:, c] for c in reversed(range(thresholds.shape[1])))
    order = np.lexsort(keys + (errors, energy))
    sorted_errors = errors[order]
    best_before = np.r_[np.iinfo(np.int64).max, np.minimum.accumulate(sorted_errors)[:-1]]
    return order[sorted_errors < best_before]


class _Front:
    """A growing Pareto front of cost totals (not means), merged point batches at a time."""

    def __init__(self, n_thresholds: int) -> None:
        self.energy, self.errors = np.zeros(0), np.zeros(0, np.int64)
        self.thresholds = np.zeros((0, n_thresholds))

    def merge(self, thresholds: np.ndarray, errors: np.ndarray, energy: np.ndarray) -> None:
        """Add candidate points, keeping only the Pareto ones."""
        energy, errors = np.r_[self.energy, energy], np.r_[self.errors, errors]
        thresholds = np.concatenate([self.thresholds, thresholds])
        keep = _pareto(energy, errors, thresholds)
        self.energy, self.errors, self.thresholds = energy[keep], errors[keep], thresholds[keep]

    def dominated(self, errors: np.ndarray, energy: np.ndarray, slack: float = 0.0) -> np.ndarray:
        """Which (energy, errors) a front point is no worse than, being cheaper by more than `slack` if it is > 0
        (and strictly better in one objective if it is 0, so equal points stay for the tie rule)."""
        if not len(self.energy):
            return np.zeros(len(errors), bool)
        if slack > 0:
            last = np.searchsorted(self.energy, energy - slack, side="right") - 1
            return (last >= 0) & (self.errors[np.maximum(last, 0)] <= errors)
        last = np.searchsorted(self.energy, energy, side="right") - 1
        best = self.errors[np.maximum(last, 0)]
        return (last >= 0) & ((best < errors) | ((best == errors) & (self.energy[np.maximum(last, 0)] < energy)))

    def result(self, n_samples: int) -> ThresholdFront:
        """The front with energies as means per sample."""
        return ThresholdFront(self.thresholds, self.errors, self.energy / n_samples)


def _descending(margin: np.ndarray, first: np.ndarray, second: np.ndarray
                ) -> tuple[np.ndarray, list[np.ndarray], Callable[[], np.ndarray]]:
    """`margin` sorted descending, two 0/1 flags in the same order (int64), and a function giving the order itself.

    When every margin is a float32 (as cached scores are) and there are fewer than 2**30 samples, one sort of 64-bit
    keys does it: the margin's order-preserving float32 bits, the sample's index and the two flags, so no gather
    through a permutation follows (at N = 10**6 argsort plus the gathers cost 120 ms of cache misses; this sort
    60 ms). Otherwise argsort. Samples with equal margins may come in any order: callers treat them as one group.
    """
    n = len(margin)
    single = margin.astype(np.float32)
    if n >= 2 ** 30 or not np.array_equal(single, margin):
        order = np.argsort(-margin)
        return margin[order], [first[order], second[order]], lambda: order
    bits = single.view(np.uint32)
    ascending = np.where(bits >> 31 != 0, ~bits, bits | np.uint32(0x80000000))  # -0.0 and +0.0 end up adjacent
    keys = (~ascending).astype(np.uint64) << np.uint64(32)
    keys |= np.arange(n, dtype=np.uint64) << np.uint64(2)
    keys |= (first.astype(np.uint64) << np.uint64(1)) | second.astype(np.uint64)
    keys.sort()
    high = ~(keys >> np.uint64(32)).astype(np.uint32)
    sorted_margin = np.where(high >> 31 != 0, high & np.uint32(0x7FFFFFFF), ~high).view(np.float32)
    return (sorted_margin.astype(np.float64), [((keys >> np.uint64(1)) & np.uint64(1)).astype(np.int64),
                                               (keys & np.uint64(1)).astype(np.int64)],
            lambda: ((keys >> np.uint64(2)) & np.uint64(2 ** 30 - 1)).astype(np.int64))


def exact_front_2(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> ThresholdFront:
    """Exact front of a 2-stage cascade: one sort of the first stage's margins, O(N log N); 1.5 / 9 / 114 ms at
    N = 10^4 / 10^5 / 10^6 (134 MiB peak) on an idle core (benchmarks/evaluator_speed.py)."""
    margins, wrong, cost = _cascade_arrays(margins, correct, cost)
    _require_stages(margins, 2)
    sorted_margin, (wrong0, wrong1), order = _descending(margins[0], wrong[0], wrong[1])
    later = cost[1] if cost[1].min() < cost[1].max() else float(cost[1, 0])  # one number: no gather
    t0, errors, energy = _sweep_sorted(sorted_margin, wrong0, wrong1, 0.0,
                                       later if isinstance(later, float) else later[order()])
    # Energy never rises as t0 falls, so a point can be on the front only if no lower t0 has fewer errors.
    candidate = (errors <= np.minimum.accumulate(errors[::-1])[::-1])
    front = _Front(1)
    front.merge(t0[candidate, None], errors[candidate], energy[candidate] + cost[0].sum())
    return front.result(margins.shape[1])


def _suffix_sums(values: np.ndarray) -> np.ndarray:
    """s[a] = sum of values[a:] along the last axis, with a trailing 0 (a = N)."""
    return np.concatenate([np.cumsum(values[..., ::-1], axis=-1)[..., ::-1], np.zeros(values.shape[:-1] + (1,))],
                          axis=-1)


def _group_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Positions where a run of equal values (a tie group) begins in a sorted array."""
    return np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])


def _any_in_group(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Whether each tie group (given by its start positions) holds a True flag."""
    return np.maximum.reduceat(flags.astype(np.int8), starts) > 0


def _last_at_least(key: np.ndarray, limit: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For each query, the last position p < end with key[p] >= limit (-1 if none), by binary lifting over
    range maxima (O(N log N) build, O(log N) per query)."""
    maxima = [key]  # maxima[l][i] = max(key[i : i + 2**l])
    while 2 ** len(maxima) <= len(key):
        step = 2 ** (len(maxima) - 1)
        maxima.append(np.maximum(maxima[-1][:-step], maxima[-1][step:]))
    position = end.copy()
    for level in reversed(range(len(maxima))):
        start = position - 2 ** level
        below = (start >= 0) & (maxima[level][np.clip(start, 0, len(maxima[level]) - 1)] < limit)
        position = np.where(below, start, position)
    return position - 1


class _ThreeStage:
    """A 3-stage cascade compressed onto the grid of the (a, b) that can be on its front (see exact_front_3).

    Row j stands for a = accepted0[j] samples leaving at stage 0 (the first by stage-0 rank), column k for
    b = accepted1[k] (by stage-1 rank). Sample i reaches stage 2 at (j, k) exactly when row_of[i] > j and
    column_of[i] > k, and then adds weights[:, i] (its stage-2 cost, and its stage-2 minus stage-1 wrong) to
    the cost and errors of the row's fixed part. Integer-valued float sums below 2**53 are exact (rounded to int64).
    """

    def __init__(self, margins: np.ndarray, wrong: np.ndarray, cost: np.ndarray) -> None:
        n = margins.shape[1]
        w0, w1, w2 = wrong
        orders = [np.argsort(-margins[k], kind="stable") for k in range(2)]
        sorted0, sorted1 = margins[0][orders[0]], margins[1][orders[1]]
        starts0, self.starts1 = _group_starts(sorted0), _group_starts(sorted1)
        best_later = np.minimum(w1, w2)
        harmful0 = _any_in_group((w0 > best_later)[orders[0]], starts0)
        strictly_better0 = _any_in_group(((w0 < best_later) | (cost[1] > 0))[orders[0]], starts0)
        self.accepted0 = np.r_[starts0[harmful0 | ~strictly_better0], n]
        self.accepted1 = np.r_[self.starts1[_any_in_group((w1 > w2)[orders[1]], self.starts1)], n]
        self.threshold0, self.threshold1 = np.r_[np.inf, sorted0], np.r_[np.inf, sorted1]
        rank0, rank1 = np.empty(n, np.int64), np.empty(n, np.int64)
        rank0[orders[0]], rank1[orders[1]] = np.arange(n), np.arange(n)
        self.row_of = np.searchsorted(self.accepted0, rank0, side="right")
        self.column_of = np.searchsorted(self.accepted1, rank1, side="right")
        kept_errors = np.r_[0, np.cumsum(w0[orders[0]])]
        escalated_errors = np.rint(_suffix_sums(w1[orders[0]].astype(float))).astype(np.int64)
        self.fixed_errors = (kept_errors + escalated_errors)[self.accepted0]
        self.fixed_cost = cost[0].sum() + _suffix_sums(cost[1][orders[0]])[self.accepted0]
        self.weights = np.stack([cost[2], (w2 - w1).astype(float)])
        self.recoverable = np.stack([w0 * (1 - w1), w0 * (1 - w2)]).astype(float)  # stage-0 errors a later stage fixes
        self.by_row = np.argsort(self.row_of, kind="stable")
        self.row_starts = np.searchsorted(self.row_of[self.by_row], np.arange(len(self.accepted0) + 1))
        # Samples whose move from stage 2 to stage 1 changes a cost or an error, keyed by stage-0 rank (for ties).
        self.tie_key = np.where((w1 != w2) | (cost[2] > 0), rank0, -1)[orders[1]]

    def rows_from(self, j0: int, j1: int) -> np.ndarray:
        """Samples with row_of in [j0, j1)."""
        return self.by_row[self.row_starts[j0]:self.row_starts[j1]]

    def column_sums(self, samples: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """(2, len(columns)) weights of `samples` that reach stage 2 at each of `columns` (column_of > k)."""
        last_below = np.searchsorted(columns, self.column_of[samples], side="left") - 1
        reach, last_below = samples[last_below >= 0], last_below[last_below >= 0]
        return np.stack([_suffix_sums(np.bincount(last_below, weight[reach], len(columns)))[:-1]
                         for weight in self.weights])

    def lost_errors(self, samples: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """How many of `samples` are wrong at stage 0 but right where each of `columns` sends them if stage 0
        does not accept them: stage 1 (column_of <= k) or stage 2 (column_of > k)."""
        first_at_or_above = np.searchsorted(columns, self.column_of[samples], side="left")
        at1, at2 = (np.cumsum(np.bincount(first_at_or_above, weight[samples], len(columns) + 1))[:-1]
                    for weight in self.recoverable)
        return np.rint(at1 + self.recoverable[1][samples].sum() - at2).astype(np.int64)

    def block(self, j0: int, j1: int, columns: np.ndarray,
              carried: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys j * columns + k, errors and cost of rows [j0, j1) x `columns`, given `carried`, the weights of
        samples with row_of >= j1 at those columns."""
        height, width = j1 - j0, len(columns)
        band = self.rows_from(j0 + 1, j1)
        last_below = np.searchsorted(columns, self.column_of[band], side="left") - 1
        band, last_below = band[last_below >= 0], last_below[last_below >= 0]
        # Rows and columns reversed, so that contiguous prefix sums give the suffix sums.
        flat = (j1 - self.row_of[band]) * width + (width - 1 - last_below)
        sums = np.empty((2, height * width))
        for out, weight, base in zip(sums, self.weights, carried):
            table = np.bincount(flat, weight[band], height * width).reshape(height, width)
            np.cumsum(table, axis=0, out=table)
            np.cumsum(table, axis=1, out=table)
            out[:] = (table + base[::-1])[::-1, ::-1].ravel()
        rows = np.repeat(np.arange(j0, j1), width)
        keys = rows * len(self.accepted1) + np.tile(columns, height)
        return keys, self.fixed_errors[rows] + np.rint(sums[1]).astype(np.int64), self.fixed_cost[rows] + sums[0]

    def thresholds(self, keys: np.ndarray) -> np.ndarray:
        """Threshold vectors of grid keys; b moves down to the smallest count with the same errors and cost (the
        tie rule of ThresholdFront): past the last tie group holding a sample that the move would change."""
        a, b = self.accepted0[keys // len(self.accepted1)], self.accepted1[keys % len(self.accepted1)]
        key = self.tie_key.astype(np.int32 if len(self.tie_key) < 2**31 else np.int64)  # halves the lifting tables
        last = _last_at_least(key, a, b)
        after = np.r_[self.starts1, len(self.tie_key)][np.searchsorted(self.starts1, last, side="right")]
        return np.column_stack([self.threshold0[a], self.threshold1[np.where(last < 0, 0, after)]])


class _BestPerErrors:
    """The least cost found for each error count 0..N (ties: least key), and a pruning table over them."""

    def __init__(self, n: int, slack: float) -> None:
        self.cost, self.key = np.full(n + 1, np.inf), np.full(n + 1, np.iinfo(np.int64).max)
        self.seeds, self.slack = np.full(n + 1, np.inf), slack
        self.least, self.fewer, self.pending = self.cost.copy(), self.cost.copy(), 0  # see refresh

    def add(self, keys: np.ndarray, errors: np.ndarray, cost: np.ndarray) -> None:
        """Record evaluated points (those already beaten are dropped first: a gather is cheaper than ufunc.at)."""
        new = ~self.beaten(errors, cost)
        self.pending += len(keys)
        keys, errors, cost = keys[new], errors[new], cost[new]
        before = self.cost[errors]
        np.minimum.at(self.cost, errors, cost)
        after = self.cost[errors]
        self.key[errors[after < before]] = np.iinfo(np.int64).max
        best = cost == after
        np.minimum.at(self.key, errors[best], keys[best])
        if self.pending > len(self.cost):  # refresh the pruning table at O(1) amortised per point
            self.refresh()

    def refresh(self) -> None:
        """Rebuild the pruning tables from the points and seeds so far: least[e] and fewer[e], the least cost with
        at most e and at most e - 1 errors."""
        self.least, self.pending = np.minimum.accumulate(np.minimum(self.cost, self.seeds)), 0
        self.fewer = np.r_[np.inf, self.least[:-1]]

    def beaten(self, errors: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """Whether a recorded point or seed is strictly better than every point no better than (errors, cost);
        errors in 0..N."""
        limit = cost - self.slack
        return (self.least[errors] < limit) | (self.fewer[errors] <= limit)

    def front(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys, errors and costs of the Pareto points, by cost ascending."""
        errors = np.flatnonzero(self.cost < np.r_[np.inf, np.minimum.accumulate(self.cost)[:-1]])[::-1]
        return self.key[errors], errors, self.cost[errors]


def exact_front_3(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray, leaf_rows: int = 32,
                  seed_fraction: int = 8, max_errors: int | None = None) -> ThresholdFront:
    """Exact front of a 3-stage cascade: branch and bound over a grid of the first two thresholds.

    With samples ranked by margin (descending) at stages 0 and 1, (a, b) counts what each stage would accept: a
    sample leaves at stage 0 if rank0 < a, else at stage 1 if rank1 < b, else at stage 2; a and b run over the
    ends of tie groups. Reduction (costs are non-negative increments, so leaving earlier never costs more):
    - a -> a' (the next tie group G of stage 0 now leaves at stage 0) leaves other samples where they are and
      costs no more. If every sample of G has wrong0 <= min(wrong1, wrong2), no error is added for any b, and if
      also one has wrong0 < min(wrong1, wrong2) or a stage-1 cost > 0, (a', b) is strictly better than (a, b) for
      every b; so a is kept only if G holds a sample with wrong0 > min(wrong1, wrong2), or no strict gain (or a = N).
    - b -> b' (group H of stage 1) moves the samples of H that did not leave at stage 0 from stage 2 to stage 1,
      costing no more; if no sample of H has wrong1 > wrong2, (a, b') is no worse for every a. So b is kept only
      if H holds such a sample (or b = N). A dropped b can only tie with the next kept one; the tie rule's b is
      found afterwards, going back over the groups whose move changes nothing at that a.
    Hence the front lies on the grid of kept (a, b) (about 10 % x 5 % of N on independent synthetic errors).
    Row ranges of the grid are halved from the largest a down, carrying per column the stage-2 weights of the
    rows above (2-D suffix sums); a column of a range is dropped when the bound from the range's top row (cost
    no lower; errors lower at most by the range's samples that stage 0 gets wrong and their later stage gets
    right) is beaten by a point found so far or a seed: the exact front of every `seed_fraction`-th sample,
    evaluated on all. Ranges of `leaf_rows` rows are evaluated; the least cost per error count is kept. With
    `max_errors`, a range's column whose error bound exceeds it is dropped too: the front's points of at most
    `max_errors` errors depend only on points of no more errors, so they come out as without it.
    Measured (benchmarks/evaluator_speed.py, two loaded cores; wall / CPU seconds, tracemalloc peak) at N = 10^4,
    10^5, 10^6: independent errors 0.16 / 0.07 s, 2.9 / 1.3 s, 48 / 25 s (600 MiB); errors nested as in the
    quickstart 0.10 / 0.06 s, 1.1 / 0.5 s, 26 / 13 s (600 MiB). The branch and bound it replaces took 2.4 s, 241 s
    and hours.
    """
    margins, wrong, cost = _cascade_arrays(margins, correct, cost)
    _require_stages(margins, 3)
    n = margins.shape[1]
    grid = _ThreeStage(margins, wrong, cost)
    best = _BestPerErrors(n, 4 * n * np.finfo(np.float64).eps * cost.sum())  # slack above any rounding of sums
    if seed_fraction > 1 and n >= 100 * seed_fraction:
        sample = slice(None, None, seed_fraction)
        seeds = exact_front_3(margins[:, sample], 1 - wrong[:, sample], cost[:, sample], leaf_rows, seed_fraction,
                              None if max_errors is None else max_errors // seed_fraction + math.isqrt(n))
        seen = CascadeEvaluator(margins, 1 - wrong, cost, cost, SEED_MEMORY_BYTES).evaluate(seeds.thresholds)
        np.minimum.at(best.seeds, seen.errors, seen.energy * n)
        best.refresh()
    cap = n if max_errors is None else max_errors
    stack = [(0, len(grid.accepted0), np.arange(len(grid.accepted1)), np.zeros((2, len(grid.accepted1))))]
    while stack:
        j0, j1, columns, carried = stack.pop()  # carried: weights of samples with row_of >= j1, per column
        top_errors = grid.fixed_errors[j1 - 1] + np.rint(carried[1]).astype(np.int64)
        bound = top_errors - grid.lost_errors(grid.rows_from(j0 + 1, j1), columns)
        open_ = ~best.beaten(bound, grid.fixed_cost[j1 - 1] + carried[0]) & (bound <= cap)
        columns, carried = columns[open_], carried[:, open_]
        if not len(columns):
            continue
        if j1 - j0 <= leaf_rows:
            keys, errors, energy = grid.block(j0, j1, columns, carried)
            within = errors <= cap
            best.add(keys[within], errors[within], energy[within])
            continue
        middle = (j0 + j1) // 2
        below = carried + grid.column_sums(grid.rows_from(middle, j1), columns)
        stack += [(j0, middle, columns, below), (middle, j1, columns, carried)]
    keys, errors, energy = best.front()
    return ThresholdFront(grid.thresholds(keys), errors.astype(np.int64), energy / n)


class _Sweeps:
    """Exact moves of a cascade's threshold vector (see coordinate_front): one threshold swept with the others
    fixed, or the last two solved as a 3-stage front; totals (not means) of errors and cost per resulting vector."""

    def __init__(self, margins: np.ndarray, wrong: np.ndarray, cost: np.ndarray) -> None:
        self.margins, self.wrong, self.cost = margins, wrong, cost
        self.exit_cost = np.cumsum(cost, axis=0)
        self.orders = [np.argsort(-margins[k]) for k in range(margins.shape[0] - 1)]
        self.samples = np.arange(margins.shape[1])

    def _answered(self, vector: np.ndarray, skipped_from: int, skipped_to: int) -> tuple[np.ndarray, np.ndarray]:
        """Each sample's exit stage with thresholds skipped_from..skipped_to-1 set to +inf, and which samples exit
        before stage `skipped_from` (their errors and cost are fixed)."""
        skipped = vector.copy()
        skipped[skipped_from:skipped_to] = np.inf
        answered = _exit_stages(self.margins, skipped[None])[0]
        return answered, answered <= skipped_from

    def _fixed(self, answered: np.ndarray, fixed: np.ndarray) -> tuple[int, float]:
        """Errors and cost of the samples in `fixed` at their exit stages."""
        samples = self.samples[fixed]
        return int(self.wrong[answered[fixed], samples].sum()), float(self.exit_cost[answered[fixed], samples].sum())

    def sweep(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every distinct value of threshold k with the others fixed at `vector`."""
        answered, fixed = self._answered(vector, k, k + 1)
        chosen = self.orders[k][~fixed[self.orders[k]]]
        t, errors, energy = _sweep_sorted(self.margins[k][chosen], self.wrong[k][chosen],
                                          self.wrong[answered[chosen], chosen], self.exit_cost[k][chosen],
                                          self.exit_cost[answered[chosen], chosen])
        vectors = np.repeat(vector[None], len(t), axis=0)
        vectors[:, k] = t
        fixed_errors, fixed_cost = self._fixed(answered, fixed)
        return vectors, errors + fixed_errors, energy + fixed_cost

    def tail(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The last two thresholds solved exactly (a 3-stage front) with the earlier ones fixed at `vector`."""
        k = self.margins.shape[0] - 3
        answered, fixed = self._answered(vector, k, k + 2)
        reaches = ~fixed
        fixed_errors, fixed_cost = self._fixed(answered, fixed)
        if not reaches.any():
            return vector[None].copy(), np.array([fixed_errors]), np.array([fixed_cost])
        sub_cost = np.stack([self.exit_cost[k][reaches], self.cost[k + 1][reaches], self.cost[k + 2][reaches]])
        sub = exact_front_3(self.margins[k:, reaches], 1 - self.wrong[k:, reaches], sub_cost)
        vectors = np.repeat(vector[None], len(sub.errors), axis=0)
        vectors[:, k:] = sub.thresholds
        return vectors, sub.errors + fixed_errors, sub.energy * reaches.sum() + fixed_cost


def coordinate_front(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray,
                     max_rounds: int = 20, exact_tail: bool = False) -> ThresholdFront:
    """Approximate front of any cascade by exact one-threshold sweeps from every front point, until none is new.

    Round 0 sweeps each threshold from the all-+inf vector; each later round sweeps every threshold of each point
    that newly entered the front, with the others fixed (an exact 2-stage sweep over the samples reaching that
    stage). Every reported point is achievable. Round 0 starts from every cascade that skips some stages (+inf) and
    stops others (lowest margin). With `exact_tail`, each new prefix of the first S-3 thresholds also gets its last
    two solved by exact_front_3. Measured gap (benchmarks/evaluator_speed.py: 100 random caches each, 10 samples with
    4 stages and 8 with 5, against every threshold vector; reference point 1.1 x the all-stages cost, N + 1 errors):
    hypervolume ratio min 0.958 / mean 0.9991 (S = 4) and min 0.940 / mean 0.9986 (S = 5); with exact_tail min
    0.993 / mean 0.9998 and min 0.940 / mean 0.9993. CPU time on a synthetic 4-stage cache (independent
    correctness 85 / 90 / 95 / 98.5 %, the benchmark's Beta margins, costs 1, 2, 4, 16): 0.4 s at N = 10^3, 19 s at
    10^4 (exact_tail: 0.5 s, 24 s). The reduction of exact_front_3 does not speed these one-threshold sweeps, which
    are one sort each already.
    """
    margins, wrong, cost = _cascade_arrays(margins, correct, cost)
    n_stages, n = margins.shape
    front = _Front(n_stages - 1)
    if n_stages == 1:
        front.merge(np.zeros((1, 0)), np.array([wrong[0].sum()]), np.array([cost[0].sum()]))
        return front.result(n)
    sweeps = _Sweeps(margins, wrong, cost)
    # Start from every cascade that skips some stages (threshold +inf) and ends others early (lowest margin).
    lowest = margins[:-1].min(axis=1)
    frontier = [np.where(mask, lowest, np.inf) for mask in itertools.product([False, True], repeat=n_stages - 1)]
    expanded, tails = set(), set()
    for _ in range(max_rounds):
        for vector in frontier:
            expanded.add(vector.tobytes())
            for k in range(n_stages - 1):
                front.merge(*sweeps.sweep(vector, k))
            if exact_tail and n_stages > 3 and vector[:-2].tobytes() not in tails:
                tails.add(vector[:-2].tobytes())
                front.merge(*sweeps.tail(vector))
        frontier = [v for v in front.thresholds if v.tobytes() not in expanded]
        if not frontier:
            break
    return front.result(n)


def front(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray, exact_tail: bool = False,
          max_errors: int | None = None, beyond: int = 0) -> ThresholdFront:
    """The threshold front of a cascade: exact for 1 to 3 stages, `coordinate_front` beyond. With `max_errors`, only
    its points of at most `max_errors` errors and the `beyond` next ones (the fewest errors above): a 3-stage front
    is then solved only that far (`_front_3_upto`), the others are cut."""
    n_stages = np.shape(margins)[0] if np.ndim(margins) == 2 else 0
    if n_stages == 2:
        result = exact_front_2(margins, correct, cost)
    elif n_stages == 3:
        result = (exact_front_3(margins, correct, cost) if max_errors is None
                  else _front_3_upto(margins, correct, cost, max_errors, beyond))
    else:
        result = coordinate_front(margins, correct, cost, exact_tail=exact_tail)
    if max_errors is None:
        return result
    above = int(np.count_nonzero(result.errors > max_errors))  # the first points: errors fall as energy rises
    keep = slice(max(above - beyond, 0), None)
    return ThresholdFront(result.thresholds[keep], result.errors[keep], result.energy[keep])


def _front_3_upto(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray, max_errors: int,
                  beyond: int) -> ThresholdFront:
    """The exact 3-stage front's points of at most `max_errors` errors and at least `beyond` more (all points up to
    a cap that grows until it holds them), each as exact_front_3 finds it."""
    n, extra = np.shape(margins)[1], max(16, 2 * beyond)
    while True:
        cap = min(max_errors + extra, n)
        result = exact_front_3(margins, correct, cost, max_errors=cap)
        if cap >= n or np.count_nonzero(result.errors > max_errors) >= beyond:
            return result
        extra *= 4


def _exit_stages(margins: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(B, N) first stage whose margin reaches its threshold; the last stage always answers."""
    passes = margins[None, :-1, :] >= thresholds[:, :, None]
    last = np.full((thresholds.shape[0], margins.shape[1]), margins.shape[0] - 1, dtype=np.int64)
    return np.where(passes.any(axis=1), passes.argmax(axis=1), last) if margins.shape[0] > 1 else last


class CascadeEvaluator:
    """Errors, accuracy, mean energy and latency, and reach of many threshold vectors on one cascade.

    Each stage's margins are sorted once, so a threshold becomes a count of accepted samples. Two stages then
    cost O(log N) per vector (prefix sums); three stages add a 2-D quadrant sum answered from a table over blocks
    of `block` samples plus two partial blocks, O(block) per vector. More stages fall back to per-sample masks in
    chunks. Memory stays within about `memory_bytes` plus the (S, N) inputs at any batch size. Measured
    (benchmarks/evaluator_speed.py): 168,000 vectors/s at N = 10^4 with 3 stages; a 550 MiB peak at N = 10^6.
    `sorted_like`: an evaluator of the same margins (other correctness or costs) whose sorts this one reuses.
    """

    def __init__(self, margins: np.ndarray, correct: np.ndarray, energy: np.ndarray, latency: np.ndarray,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, block: int | None = None,
                 sorted_like: CascadeEvaluator | None = None) -> None:
        self.margins, self.wrong, self.energy, self.latency = _cascade_arrays(margins, correct, energy, latency)
        self.memory_bytes = memory_bytes
        n_stages, n = self.margins.shape
        if sorted_like is None:
            self.sorted_margins = np.sort(self.margins[:-1], axis=1)
            sorted_stages = min(n_stages - 1, 2) if n_stages in (2, 3) else 0
            self.orders = [np.argsort(-self.margins[k]) for k in range(sorted_stages)]  # by margin, descending
        elif np.array_equal(sorted_like.margins, self.margins):
            self.sorted_margins, self.orders = sorted_like.sorted_margins, sorted_like.orders
        else:
            raise ValueError("sorted_like must be an evaluator of the same margins")
        self.base = np.array([self.energy[0].sum(), self.latency[0].sum()])
        self.bytes_per_vector = 64 if n_stages == 2 else (n_stages + 48) * n  # chunk working memory
        self.exit_energy, self.exit_latency = np.cumsum(self.energy, axis=0), np.cumsum(self.latency, axis=0)
        if n_stages in (2, 3):
            order0 = self.orders[0]
            right = 1 - self.wrong
            self.kept_right = np.r_[0, np.cumsum(right[0][order0])]
            # Suffix sums over the escalated samples (rank >= a): right at stage 1, energy and latency of stage 1.
            escalated = np.stack([right[1], self.energy[1], self.latency[1]])[:, order0]
            self.escalated = np.c_[np.cumsum(escalated[:, ::-1], axis=1)[:, ::-1], np.zeros(3)]
        if n_stages == 3:
            self._build_quadrants(order0, right, block)
            self.bytes_per_vector = 128 * self.block

    def _build_quadrants(self, order0: np.ndarray, right: np.ndarray, block: int | None) -> None:
        """Tables of sums over samples with stage-0 rank >= a and stage-1 rank >= b, at block multiples of a, b."""
        n = self.margins.shape[1]
        order1 = self.orders[1]
        rank0, rank1 = np.empty(n, np.int64), np.empty(n, np.int64)
        rank0[order0], rank1[order1] = np.arange(n), np.arange(n)
        # Weights of a sample that reaches stage 2: a count, right at stage 1 and 2, stage-2 energy and latency.
        weights = np.stack([np.ones(n), right[1], right[2], self.energy[2], self.latency[2]])
        cells = self.memory_bytes // 2 // (8 * len(weights))
        self.block = block or max(1, math.isqrt(n) // 4, -(-n // max(1, math.isqrt(cells) - 1)))
        side = -(-n // self.block) + 1
        # Stored with rows and columns reversed (cell [side-1-i, side-1-j] for block multiples i, j), so that the 2-D
        # suffix sums are prefix sums over contiguous memory.
        flat = (side - 1 - rank0 // self.block) * side + (side - 1 - rank1 // self.block)
        self.reversed_table = np.empty((len(weights), side, side))
        for table, weight in zip(self.reversed_table, weights):  # one weight at a time bounds the temporaries
            table[...] = np.bincount(flat, weight, side * side).reshape(side, side)
            np.cumsum(table, axis=0, out=table)
            np.cumsum(table, axis=1, out=table)
        self.rank1_by_rank0, self.rank0_by_rank1 = rank1[order0], rank0[order1]
        self.weights_by_rank0, self.weights_by_rank1 = weights[:, order0], weights[:, order1]

    def _accepted(self, thresholds: np.ndarray) -> np.ndarray:
        """(B, S-1) how many samples each stage accepts (margin >= threshold)."""
        n = self.margins.shape[1]
        return np.stack([n - np.searchsorted(self.sorted_margins[k], thresholds[:, k], side="left")
                         for k in range(thresholds.shape[1])], axis=1)

    def _quadrant(self, a0: np.ndarray, a1: np.ndarray) -> np.ndarray:
        """(5, B) weight sums over samples with stage-0 rank >= a0 and stage-1 rank >= a1."""
        n, size = self.margins.shape[1], self.block
        b0, b1 = -(-a0 // size), -(-a1 // size)
        last = self.reversed_table.shape[1] - 1
        total = self.reversed_table[:, last - b0, last - b1]
        offsets = np.arange(size)
        # Partial stage-0 block: ranks a0 .. b0*size-1 with stage-1 rank >= a1 (the table covers b0*size on).
        rows = a0[:, None] + offsets
        inside = (rows < np.minimum(b0 * size, n)[:, None])
        rows = np.minimum(rows, n - 1)
        inside &= self.rank1_by_rank0[rows] >= a1[:, None]
        # Partial stage-1 block: ranks a1 .. b1*size-1 whose stage-0 rank is in the table's rows (>= b0*size).
        cols = a1[:, None] + offsets
        inside_cols = (cols < np.minimum(b1 * size, n)[:, None])
        cols = np.minimum(cols, n - 1)
        inside_cols &= self.rank0_by_rank1[cols] >= (b0 * size)[:, None]
        vector0, vector1 = np.nonzero(inside)[0], np.nonzero(inside_cols)[0]
        rows, cols = rows[inside], cols[inside_cols]
        return total + np.stack([np.bincount(vector0, w0[rows], len(a0)) + np.bincount(vector1, w1[cols], len(a0))
                                 for w0, w1 in zip(self.weights_by_rank0, self.weights_by_rank1)])

    def evaluate(self, thresholds: np.ndarray) -> BatchResult:
        """Results for a batch of threshold vectors, (B, S-1) or (S-1,)."""
        n_stages, n = self.margins.shape
        thresholds = np.atleast_2d(np.asarray(thresholds, dtype=np.float64))
        if thresholds.shape[1] != n_stages - 1 or thresholds.ndim != 2:
            raise ValueError(f"need {n_stages - 1} thresholds per vector for {n_stages} stages, "
                             f"got shape {thresholds.shape}")
        if np.isnan(thresholds).any():
            raise ValueError("thresholds contain NaN")
        chunk = max(1, self.memory_bytes // 2 // self.bytes_per_vector)
        parts = [self._evaluate_chunk(thresholds[i:i + chunk]) for i in range(0, len(thresholds), chunk)]
        right, energy, latency, reach = (np.concatenate(p) for p in zip(*parts)) if parts else (
            np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros((0, n_stages), np.int64))
        return BatchResult(n - right, right / n, energy / n, latency / n, reach / n)

    def _evaluate_chunk(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Totals for one chunk: right answers (int), energy, latency, and samples reaching each stage (int)."""
        n_stages, n = self.margins.shape
        if n_stages not in (2, 3):
            return self._evaluate_masks(thresholds)
        a0 = self._accepted(thresholds)[:, 0]
        right = self.kept_right[a0] + self.escalated[0, a0]
        energy, latency = self.base[0] + self.escalated[1, a0], self.base[1] + self.escalated[2, a0]
        reach = [np.full(len(a0), n), n - a0]
        if n_stages == 3:
            count, right1, right2, energy2, latency2 = self._quadrant(a0, self._accepted(thresholds)[:, 1])
            right, energy, latency = right - right1 + right2, energy + energy2, latency + latency2
            reach.append(count)
        # Integer-valued sums of fewer than 2**53 ones are exact in float64.
        return (np.rint(right).astype(np.int64), energy, latency,
                np.rint(np.stack(reach, axis=1)).astype(np.int64))

    def _evaluate_masks(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Any stage count: every sample's exit stage, for a chunk small enough to hold (B, N) masks."""
        n_stages, n = self.margins.shape
        answered = _exit_stages(self.margins, thresholds)
        samples = np.arange(n)
        right = n - self.wrong[answered, samples].sum(axis=1)
        energy = self.exit_energy[answered, samples].sum(axis=1)
        latency = self.exit_latency[answered, samples].sum(axis=1)
        reach = np.stack([(answered >= k).sum(axis=1) for k in range(n_stages)], axis=1)
        return right, energy, latency, reach
