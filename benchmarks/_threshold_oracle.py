"""Brute-force threshold fronts: every threshold vector of a cascade, evaluated sample by sample from the definition.

A reference for `benchmarks/search_quality.py` and its test, written from the tool's definition of a cascade and
sharing no code with its solver or evaluator (`dse.exact`, `dse.evaluate_cascade`): with S stages and margins,
correct (S, N), a sample leaves at the first stage k < S-1 whose margin is >= t_k, else at the last stage, and pays
the costs of stages 0..k (cost (S,) per stage or (S, N) per sample). Each threshold runs over +inf (accepts none) and
every distinct margin of its stage: any other value accepts the same samples as the smallest margin at or above it,
so these vectors reach every outcome. Their number is the product of (distinct margins + 1) over the first S-1
stages: a few hundred samples for three stages, thousands for two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_VECTORS = 5_000_000  # refuse enumerations beyond this many threshold vectors (minutes of numpy)


@dataclass(frozen=True)
class Enumeration:
    """Every candidate threshold vector of one cascade and, per vector, its wrong answers and the stage each sample
    leaves at: thresholds (B, S-1), errors (B,) int64, exits (B, N) int8."""

    thresholds: np.ndarray
    errors: np.ndarray
    exits: np.ndarray

    def reach(self) -> np.ndarray:
        """(B, S) how many samples run each stage."""
        stages = int(self.thresholds.shape[1]) + 1
        return np.stack([(self.exits >= k).sum(axis=1) for k in range(stages)], axis=1)

    def energy(self, cost: np.ndarray) -> np.ndarray:
        """(B,) mean cost per sample: a per-stage cost (S,) from reach counts, a per-sample one (S, N) sample by
        sample."""
        cost = np.asarray(cost, dtype=np.float64)
        n = self.exits.shape[1]
        if cost.ndim == 1:
            return self.reach() @ cost / n
        paid = np.cumsum(cost, axis=0)  # paid[k, i]: what sample i pays when it leaves at stage k
        return sum(np.einsum("bi,i->b", self.exits == k, paid[k]) for k in range(len(paid))) / n


@dataclass(frozen=True)
class Front:
    """A Pareto front by energy ascending, errors strictly decreasing; thresholds (P, S-1), errors (P,), energy (P,)
    mean per sample. Among vectors with equal (energy, errors) the lexicographically largest is kept."""

    thresholds: np.ndarray
    errors: np.ndarray
    energy: np.ndarray


def candidates(margin: np.ndarray) -> np.ndarray:
    """+inf, then every distinct value of one stage's margins from high to low."""
    return np.r_[np.inf, np.unique(np.asarray(margin, dtype=np.float64))[::-1]]


def enumerate_vectors(margins: np.ndarray, correct: np.ndarray) -> Enumeration:
    """Evaluate every candidate threshold vector, one sample at a time per stage (no sorting, no prefix sums)."""
    margins = np.asarray(margins, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    stages, n = margins.shape
    grids = [candidates(margins[k]) for k in range(stages - 1)]
    total = int(np.prod([len(g) for g in grids])) if grids else 1
    if total > MAX_VECTORS:
        raise ValueError(f"{total} threshold vectors are more than the oracle enumerates ({MAX_VECTORS}); "
                         f"use fewer samples")
    thresholds = (np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(total, stages - 1) if grids
                  else np.zeros((1, 0)))  # every vector, the last threshold fastest
    exits = np.full((total, n), stages - 1, dtype=np.int8)
    for k in reversed(range(stages - 1)):  # the first stage whose margin reaches its threshold wins
        exits = np.where(margins[k][None, :] >= thresholds[:, k, None], np.int8(k), exits)
    errors = sum(np.einsum("bi,i->b", exits == k, wrong[k].astype(np.int64)) for k in range(stages))
    return Enumeration(thresholds, np.asarray(errors, dtype=np.int64), exits)


def pareto(thresholds: np.ndarray, errors: np.ndarray, energy: np.ndarray) -> Front:
    """The Pareto points of (energy, errors), walking the points by energy, then errors, then thresholds from the
    lexicographically largest: a point is kept when it has fewer errors than every point before it. Only the
    least-energy points of each error count can be kept, so only they are walked."""
    errors, energy = np.asarray(errors), np.asarray(energy)
    least = np.full(errors.max() + 1, np.inf)
    np.minimum.at(least, errors, energy)
    walked = np.flatnonzero(energy == least[errors])
    order = sorted(walked.tolist(), key=lambda i: (energy[i], errors[i], tuple(-float(t) for t in thresholds[i])))
    kept, fewest = [], None
    for i in order:
        if fewest is None or errors[i] < fewest:
            kept.append(i)
            fewest = errors[i]
    return Front(thresholds[kept], errors[kept].astype(np.int64), energy[kept])


def brute_force_front(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> Front:
    """The exact (energy, errors) front of one cascade over every candidate threshold vector."""
    enumeration = enumerate_vectors(margins, correct)
    return pareto(enumeration.thresholds, enumeration.errors, enumeration.energy(cost))


def same_front(oracle: Front, errors: np.ndarray, energy: np.ndarray, rtol: float = 1e-9) -> bool:
    """True when a front has the oracle's error counts, point for point, at the same energies (within `rtol`, the
    rounding of sums taken in another order)."""
    errors, energy = np.asarray(errors), np.asarray(energy, dtype=np.float64)
    return (len(errors) == len(oracle.errors) and bool(np.array_equal(errors, oracle.errors))
            and bool(np.allclose(energy, oracle.energy, rtol=rtol, atol=0.0)))
