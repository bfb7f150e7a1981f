"""Exact threshold fronts, exact loss limits and a fast batch evaluator for one cascade structure (pure numpy).

A cascade has S stages; margins and correct are (S, N). A sample leaves at the first stage k < S-1 whose margin
is >= t_k, else at the last stage, and pays cost_0 + ... + cost_k, where cost is (S,) per stage or (S, N) per
sample. Errors are integer counts of wrong final answers; energies are means per sample in the input's unit.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

DEFAULT_MEMORY_BYTES = 256 * 2**20


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
                  accept_cost: np.ndarray, reject_cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For t = +inf, then every distinct margin from high to low (inputs sorted by margin descending): t, and the
    total errors and cost when samples with margin >= t take the accept values and the others the reject values."""
    n = len(margin)
    last_of_tie = np.r_[np.flatnonzero(margin[1:] != margin[:-1]), n - 1] if n else np.zeros(0, np.int64)
    accepted = np.r_[0, last_of_tie + 1]
    errors = int(reject_errors.sum()) + np.r_[0, np.cumsum(accept_errors - reject_errors)[last_of_tie]]
    # Two sums of non-negative terms (accepted prefix, rejected suffix), so cost never drops below a subset's.
    rejected_suffix = np.r_[np.cumsum(reject_cost[::-1])[::-1], 0.0]
    cost = np.r_[0.0, np.cumsum(accept_cost)[last_of_tie]] + rejected_suffix[accepted]
    return np.r_[np.inf, margin[last_of_tie]], errors.astype(np.int64), cost


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


def exact_front_2(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> ThresholdFront:
    """Exact front of a 2-stage cascade: one sort of the first stage's margins, O(N log N); 1.3 s and a 143 MiB
    peak at N = 10^6 (benchmarks/evaluator_speed.py)."""
    margins, wrong, cost = _cascade_arrays(margins, correct, cost)
    _require_stages(margins, 2)
    order = np.argsort(-margins[0])
    t0, errors, energy = _sweep_sorted(margins[0][order], wrong[0][order], wrong[1][order],
                                       np.zeros(len(order)), cost[1][order])
    # Energy never rises as t0 falls, so a point can be on the front only if no lower t0 has fewer errors.
    candidate = (errors <= np.minimum.accumulate(errors[::-1])[::-1])
    front = _Front(1)
    front.merge(t0[candidate, None], errors[candidate], energy[candidate] + cost[0].sum())
    return front.result(margins.shape[1])


def _suffix_sums(values: np.ndarray) -> np.ndarray:
    """s[a] = sum of values[a:] along the last axis, with a trailing 0 (a = N)."""
    return np.concatenate([np.cumsum(values[..., ::-1], axis=-1)[..., ::-1], np.zeros(values.shape[:-1] + (1,))],
                          axis=-1)


def _block_table(cell0: np.ndarray, cell1: np.ndarray, weight: np.ndarray, side: int) -> np.ndarray:
    """t[x, y] = sum of weight over samples whose stage-0 cell >= x and stage-1 cell >= y."""
    sums = np.bincount(cell0 * side + cell1, weight, side * side).reshape(side, side)[::-1, ::-1]
    np.cumsum(sums, axis=0, out=sums)
    np.cumsum(sums, axis=1, out=sums)
    return sums[::-1, ::-1]


class _ThreeStage:
    """One 3-stage cascade indexed by (a, b): how many samples stages 0 and 1 would accept on their own.

    With ranks by margin (descending), a sample leaves at stage 0 if rank0 < a, else at stage 1 if rank1 < b, else
    at stage 2; only a and b at the end of a tie group are threshold vectors. Cost is non-increasing in a and b.
    Tables at multiples of `block` give any block-aligned quadrant sum in O(1). Integer-valued float sums below
    2**53 are exact and are rounded to int64.
    """

    def __init__(self, margins: np.ndarray, wrong: np.ndarray, cost: np.ndarray, block: int | None) -> None:
        n = self.n = margins.shape[1]
        self.block = block or max(16, math.isqrt(n))
        orders = [np.argsort(-margins[k]) for k in range(2)]
        self.valid, self.threshold, ranks = [], [], []
        for k, order in enumerate(orders):
            sorted_margin = margins[k][order]
            self.valid.append(np.r_[True, sorted_margin[1:] != sorted_margin[:-1], True])
            self.threshold.append(np.r_[np.inf, sorted_margin])
            rank = np.empty(n, np.int64)
            rank[order] = np.arange(n)
            ranks.append(rank)
        self.rank1_by_rank0, self.rank0_by_rank1 = ranks[1][orders[0]], ranks[0][orders[1]]
        w0, w1, w2 = wrong[:, orders[0]]
        self.kept_errors = np.r_[0, np.cumsum(w0)]  # errors of the samples stage 0 keeps, by a
        self.fixed_errors = self.kept_errors + np.rint(_suffix_sums(w1.astype(float))).astype(np.int64)
        self.fixed_cost = cost[0].sum() + _suffix_sums(cost[1][orders[0]])
        # Quadrant weights of a sample that reaches stage 2: its stage-2 cost and extra errors there (w2 - w1).
        self.local = [np.stack([cost[2][order], (wrong[2] - wrong[1])[order]]) for order in orders]
        self.side = -(-(n + 1) // self.block) + 1  # cells cover a = 0..n; the last row and column sum to 0
        cells = np.arange(n) // self.block, self.rank1_by_rank0 // self.block
        bound_weights = [w1, w2, np.minimum(w0, w1), np.minimum(w0, w2), np.minimum(np.minimum(w0, w1), w2),
                         np.minimum(w1, w2)]
        self.error_tables = np.stack([np.rint(_block_table(*cells, w.astype(float), self.side)).astype(np.int64)
                                      for w in bound_weights])
        self.cost_table = _block_table(*cells, self.local[0][0], self.side)

    def row(self, a: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every second threshold for stage 0 accepting a samples: (P, 2) thresholds, errors, cost."""
        escalated = np.flatnonzero(self.rank0_by_rank1 >= a)
        t1, errors, energy = _sweep_sorted(self.threshold[1][escalated + 1], np.zeros(len(escalated), np.int64),
                                           np.rint(self.local[1][1][escalated]).astype(np.int64),
                                           np.zeros(len(escalated)), self.local[1][0][escalated])
        return (np.column_stack([np.full(len(t1), self.threshold[0][a]), t1]), errors + self.fixed_errors[a],
                energy + self.fixed_cost[a])

    def bound(self, x0: int, x1: int, y0: int, y1: int) -> tuple[int, float]:
        """Lower bounds on errors and cost over a in [x0, x1) and b in [y0, y1) cells: each sample's least wrong
        option among those the cells allow, and the cost at the cells' largest (a, b)."""
        cuts0, cuts1 = [0, x0, x1, self.side - 1], [0, y0, y1, self.side - 1]
        t = self.error_tables[:, cuts0][:, :, cuts1]
        band = t[:, :-1, :-1] - t[:, 1:, :-1] - t[:, :-1, 1:] + t[:, 1:, 1:]  # (weight, stage-0 band, stage-1 band)
        w1, w2, min01, min02, min012, min12 = band
        errors = (self.kept_errors[x0 * self.block] + min01[1, 0] + min012[1, 1] + min02[1, 2]
                  + w1[2, 0] + min12[2, 1] + w2[2, 2])
        return int(errors), float(self.fixed_cost[min(x1 * self.block, self.n)] + self.cost_table[x1, y1])

    def cell(self, x: int, y: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every threshold vector of one cell, from its corner's table entry plus the cell's two strips."""
        size, n = self.block, self.n
        a = np.arange(x * size, min((x + 1) * size, n + 1))
        b = np.arange(y * size, min((y + 1) * size, n + 1))
        corner_a, corner_b = min((x + 1) * size, n), min((y + 1) * size, n)
        corner = (np.zeros(2) if n in (corner_a, corner_b) else
                  np.array([self.cost_table[x + 1, y + 1],
                            self.error_tables[1, x + 1, y + 1] - self.error_tables[0, x + 1, y + 1]]))
        # Samples with rank0 in [a, corner_a) and rank1 >= b: a 2-D suffix sum over the cell's stage-0 strip.
        strip = np.arange(x * size, corner_a)
        rank1 = self.rank1_by_rank0[strip]
        inside = rank1 >= y * size
        flat = (strip[inside] - x * size) * len(b) + np.minimum(rank1[inside] - y * size, len(b) - 1)
        quadrant = np.zeros((2, len(strip) + 1, len(b)))
        for sums, weight in zip(quadrant, self.local[0][:, strip[inside]]):
            sums[:-1] = np.bincount(flat, weight, len(strip) * len(b)).reshape(len(strip), len(b))
            sums[...] = np.cumsum(np.cumsum(sums[::-1, ::-1], axis=0), axis=1)[::-1, ::-1]
        # Samples with rank1 in [b, corner_b) and rank0 >= corner_a: a suffix sum over the stage-1 strip.
        strip1 = np.arange(y * size, corner_b)
        below = strip1[self.rank0_by_rank1[strip1] >= corner_a]
        column = np.stack([_suffix_sums(np.bincount(below - y * size, weight, len(b)))[:-1]
                           for weight in self.local[1][:, below]])
        local = corner[:, None, None] + quadrant[:, a - x * size] + column[:, None, :]
        rows, cols = np.nonzero(self.valid[0][a][:, None] & self.valid[1][b][None, :])
        energy = self.fixed_cost[a[rows]] + local[0][rows, cols]
        errors = self.fixed_errors[a[rows]] + np.rint(local[1][rows, cols]).astype(np.int64)
        return np.column_stack([self.threshold[0][a[rows]], self.threshold[1][b[cols]]]), errors, energy


def exact_front_3(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray, block: int | None = None,
                  seed_rows: int = 16) -> ThresholdFront:
    """Exact front of a 3-stage cascade by branch and bound over cells of (a, b), the counts stages 0 and 1 accept.

    The front starts from `seed_rows` exact rows (one first threshold, every second one, O(N) each). A rectangle
    of cells is skipped when a front point is cheaper (by more than the rounding of the sums) and no worse than its
    bound: its largest (a, b)'s cost and each sample's least wrong option allowed in it. Surviving single cells are
    evaluated exactly in O(block^2). Exact for any input, but about O(N^2) on synthetic caches: the cells whose
    bound no front point beats are a fixed share of the (a, b) plane. Measured (benchmarks/evaluator_speed.py, two
    loaded cores): 2.4 s at N = 10^4, 241 s at 10^5, so hours at 10^6.
    """
    margins, wrong, cost = _cascade_arrays(margins, correct, cost)
    _require_stages(margins, 3)
    n = margins.shape[1]
    grid = _ThreeStage(margins, wrong, cost, block)
    slack = 4 * n * np.finfo(np.float64).eps * cost.sum()  # above any rounding of these sums of n terms
    front = _Front(2)
    rows = np.flatnonzero(grid.valid[0])
    for a in rows[np.unique(np.linspace(0, len(rows) - 1, min(seed_rows, len(rows))).astype(np.int64))]:
        front.merge(*grid.row(int(a)))
    cells = grid.side - 1
    stack = [(0, cells, 0, cells)]
    while stack:
        x0, x1, y0, y1 = stack.pop()
        errors, energy = grid.bound(x0, x1, y0, y1)
        if front.dominated(np.array([errors]), np.array([energy]), slack)[0]:
            continue
        if x1 - x0 == 1 and y1 - y0 == 1:
            thresholds, errors, energy = grid.cell(x0, y0)
            new = ~front.dominated(errors, energy)
            if new.any():
                front.merge(thresholds[new], errors[new], energy[new])
        elif x1 - x0 >= y1 - y0:
            middle = (x0 + x1) // 2
            stack += [(middle, x1, y0, y1), (x0, middle, y0, y1)]
        else:
            middle = (y0 + y1) // 2
            stack += [(x0, x1, middle, y1), (x0, x1, y0, middle)]
    return front.result(n)


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
    0.993 / mean 0.9998 and min 0.940 / mean 0.9993. Time on a synthetic 4-stage cache: 0.4 s at N = 10^3, 20 s at
    10^4 (exact_tail: 1.6 s, 120 s).
    """
    margins, wrong, cost = _cascade_arrays(margins, correct, cost)
    n_stages, n = margins.shape
    front = _Front(n_stages - 1)
    if n_stages == 1:
        front.merge(np.zeros((1, 0)), np.array([wrong[0].sum()]), np.array([cost[0].sum()]))
        return front.result(n)
    exit_cost = np.cumsum(cost, axis=0)
    orders = [np.argsort(-margins[k]) for k in range(n_stages - 1)]
    samples = np.arange(n)

    def sweep(vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every distinct value of threshold k with the others fixed at `vector`."""
        skipped = vector.copy()
        skipped[k] = np.inf
        answered = _exit_stages(margins, skipped[None])[0]
        reaches = answered > k
        fixed = ~reaches
        chosen = orders[k][reaches[orders[k]]]
        t, errors, energy = _sweep_sorted(margins[k][chosen], wrong[k][chosen], wrong[answered[chosen], chosen],
                                          exit_cost[k][chosen], exit_cost[answered[chosen], chosen])
        vectors = np.repeat(vector[None], len(t), axis=0)
        vectors[:, k] = t
        return (vectors, errors + int(wrong[answered[fixed], samples[fixed]].sum()),
                energy + exit_cost[answered[fixed], samples[fixed]].sum())

    def tail(vector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The last two thresholds solved exactly (a 3-stage front) with the earlier ones fixed at `vector`."""
        k = n_stages - 3
        skipped = vector.copy()
        skipped[k:] = np.inf
        answered = _exit_stages(margins, skipped[None])[0]
        reaches = answered > k
        fixed = ~reaches
        if not reaches.any():
            return (vector[None].copy(), np.array([wrong[answered, samples].sum()]),
                    np.array([exit_cost[answered, samples].sum()]))
        sub_cost = np.stack([exit_cost[k][reaches], cost[k + 1][reaches], cost[k + 2][reaches]])
        sub = exact_front_3(margins[k:, reaches], 1 - wrong[k:, reaches], sub_cost)
        vectors = np.repeat(vector[None], len(sub.errors), axis=0)
        vectors[:, k:] = sub.thresholds
        return (vectors, sub.errors + int(wrong[answered[fixed], samples[fixed]].sum()),
                sub.energy * reaches.sum() + exit_cost[answered[fixed], samples[fixed]].sum())

    # Start from every cascade that skips some stages (threshold +inf) and ends others early (lowest margin).
    lowest = margins[:-1].min(axis=1)
    frontier = [np.where(mask, lowest, np.inf) for mask in itertools.product([False, True], repeat=n_stages - 1)]
    expanded, tails = set(), set()
    for _ in range(max_rounds):
        for vector in frontier:
            expanded.add(vector.tobytes())
            for k in range(n_stages - 1):
                front.merge(*sweep(vector, k))
            if exact_tail and n_stages > 3 and vector[:-2].tobytes() not in tails:
                tails.add(vector[:-2].tobytes())
                front.merge(*tail(vector))
        frontier = [v for v in front.thresholds if v.tobytes() not in expanded]
        if not frontier:
            break
    return front.result(n)


def front(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray, exact_tail: bool = False) -> ThresholdFront:
    """The threshold front of a cascade: exact for 1 to 3 stages, `coordinate_front` beyond."""
    n_stages = np.shape(margins)[0] if np.ndim(margins) == 2 else 0
    if n_stages == 2:
        return exact_front_2(margins, correct, cost)
    if n_stages == 3:
        return exact_front_3(margins, correct, cost)
    return coordinate_front(margins, correct, cost, exact_tail=exact_tail)


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
    """

    def __init__(self, margins: np.ndarray, correct: np.ndarray, energy: np.ndarray, latency: np.ndarray,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, block: int | None = None) -> None:
        self.margins, self.wrong, self.energy, self.latency = _cascade_arrays(margins, correct, energy, latency)
        self.memory_bytes = memory_bytes
        n_stages, n = self.margins.shape
        self.sorted_margins = np.sort(self.margins[:-1], axis=1)
        self.base = np.array([self.energy[0].sum(), self.latency[0].sum()])
        self.bytes_per_vector = 64 if n_stages == 2 else (n_stages + 48) * n  # chunk working memory
        self.exit_energy, self.exit_latency = np.cumsum(self.energy, axis=0), np.cumsum(self.latency, axis=0)
        if n_stages in (2, 3):
            order0 = np.argsort(-self.margins[0])
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
        order1 = np.argsort(-self.margins[1])
        rank0, rank1 = np.empty(n, np.int64), np.empty(n, np.int64)
        rank0[order0], rank1[order1] = np.arange(n), np.arange(n)
        # Weights of a sample that reaches stage 2: a count, right at stage 1 and 2, stage-2 energy and latency.
        weights = np.stack([np.ones(n), right[1], right[2], self.energy[2], self.latency[2]])
        cells = self.memory_bytes // 2 // (8 * len(weights))
        self.block = block or max(1, math.isqrt(n) // 4, -(-n // max(1, math.isqrt(cells) - 1)))
        side = -(-n // self.block) + 1
        flat = (rank0 // self.block) * side + rank1 // self.block
        self.table = np.empty((len(weights), side, side))
        for table, weight in zip(self.table, weights):  # one weight at a time bounds the temporaries
            reversed_sums = np.bincount(flat, weight, side * side).reshape(side, side)[::-1, ::-1]
            np.cumsum(reversed_sums, axis=0, out=reversed_sums)
            np.cumsum(reversed_sums, axis=1, out=reversed_sums)
            table[...] = reversed_sums[::-1, ::-1]
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
        total = self.table[:, b0, b1]
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
