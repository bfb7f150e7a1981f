"""Dynamic bit-width (Jahier Pagliari 2018): minimum-bit-width characterization and the precision cascade.

Numpy over the cached per-sample rows of one net at several bit-widths (Variant.bits, built by `nets`);
no torch import.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from costmodel import UserError
from dse.core._exact import allowed_extra_errors
from nets import Dataset, ScoreCache, TrainingConfig, Variant, VariantScores, build_scores

MIN_BITS, MAX_BITS = 2, 32
MIN_BAR_FRACTION = 0.01  # §4.1: bars lower than 1% are merged with higher precisions


class BitwidthError(UserError):
    """A bit-width set that cannot be characterized or cascaded."""


def validate_bitwidth_set(bits: Sequence[int]) -> tuple[int, ...]:
    """`bits` as a tuple if it is non-empty, strictly increasing and within 2..32; else BitwidthError."""
    widths = tuple(bits)
    if not widths:
        raise BitwidthError("bit-width set is empty: give at least one width, e.g. 8,16")
    for width in widths:
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not MIN_BITS <= width <= MAX_BITS:
            raise BitwidthError(f"bit-width must be an integer in {MIN_BITS}..{MAX_BITS}, got {width!r}")
    for low, high in zip(widths, widths[1:]):
        if high <= low:
            raise BitwidthError(f"bit-widths must be strictly increasing, got {high} after {low} in {list(widths)}")
    return tuple(int(w) for w in widths)


def load_bitwidth_scores(dataset: Dataset, net: str, bitwidths: Sequence[int], config: TrainingConfig,
                         cache: ScoreCache, rounding: str = "nearest", n_jobs: int = 1,
                         log: Callable[[str], None] = print) -> dict[int | None, VariantScores]:
    """Scores of `net` in float (key None) and at every width, built or loaded; one set of trained weights."""
    keys: list[int | None] = [None, *validate_bitwidth_set(bitwidths)]
    variants = [Variant(net) if bits is None else Variant(net, bits=bits, rounding=rounding) for bits in keys]
    scores = build_scores(dataset, variants, config, cache, n_jobs=n_jobs, log=log)
    return {bits: scores[variant] for bits, variant in zip(keys, variants)}


@dataclass(frozen=True)
class Characterization:
    """Minimum bit-width of every sample the float net classifies correctly, over characterized widths.

    `minimum_index[i]` indexes `bitwidths`; len(bitwidths) means only float is correct; -1 marks a sample
    wrong in float (left out, as in §3).
    """

    bitwidths: tuple[int, ...]
    minimum_index: np.ndarray  # (N,) int

    @property
    def labels(self) -> list[str]:
        """Bar names: each width, then 'float'."""
        return [f"{b}b" for b in self.bitwidths] + ["float"]

    @property
    def counts(self) -> np.ndarray:
        """(K+1,) samples per bar: minimum width b_1..b_K, then float only."""
        kept = self.minimum_index[self.minimum_index >= 0]
        return np.bincount(kept, minlength=len(self.bitwidths) + 1)

    @property
    def fractions(self) -> np.ndarray:
        """(K+1,) share of float-correct samples per bar (the histogram of Fig. 2)."""
        counts = self.counts
        return counts / max(int(counts.sum()), 1)


def characterize(correct: np.ndarray, correct_float: np.ndarray, bitwidths: Sequence[int]) -> Characterization:
    """Minimum bit-width of each float-correct sample from its correctness at every width (§4.1, Fig. 3).

    The rule: a sample's minimum bit-width is the smallest characterized b such that it is correct at b
    and at every larger characterized width, so 'correct at the minimum' implies 'correct above it'.
    correct: (K, N) bool, row k at bitwidths[k]; correct_float: (N,) bool.
    """
    widths = validate_bitwidth_set(bitwidths)
    correct = np.asarray(correct, dtype=bool)
    if correct.shape != (len(widths), len(correct_float)):
        raise BitwidthError(f"correctness must have shape ({len(widths)}, {len(correct_float)}) for "
                            f"{len(widths)} widths, got {correct.shape}")
    correct_above = np.logical_and.accumulate(correct[::-1], axis=0)[::-1]  # (K, N) correct at b_k and above
    minimum = np.where(correct_above.any(axis=0), correct_above.argmax(axis=0), len(widths))
    return Characterization(widths, np.where(np.asarray(correct_float, dtype=bool), minimum, -1))


def characterize_scores(scores: dict[int | None, VariantScores], split: str = "calib") -> Characterization:
    """`characterize` on one split of `load_bitwidth_scores` output (key None: the float net)."""
    widths = sorted(bits for bits in scores if bits is not None)
    correct = np.stack([scores[bits].splits[split].correct for bits in widths])
    return characterize(correct, scores[None].splits[split].correct, widths)


def merge_bars(fractions: np.ndarray, bitwidths: Sequence[int],
               min_fraction: float = MIN_BAR_FRACTION) -> dict[int, float]:
    """The candidate bit-width set: the paper's minimum-bar rule applied to the width bars of a histogram.

    Going up in precision, a bar below `min_fraction` (after absorbing the lower bars merged into it) is
    merged into the next higher bar; mass left over above the highest kept bar is dropped, as the paper
    drops CaffeNet's negligible 32-bit bar. Returns kept width -> merged share. `fractions` may carry a
    trailing 'float' bar (ignored: no bit-width serves it).
    """
    widths = validate_bitwidth_set(bitwidths)
    kept: dict[int, float] = {}
    carried = 0.0
    for width, share in zip(widths, np.asarray(fractions, dtype=np.float64)):
        carried += share
        if carried >= min_fraction:
            kept[width], carried = carried, 0.0
    if not kept:
        raise BitwidthError(f"no bit-width bar reaches {100 * min_fraction:g}% of the float-correct samples")
    return kept


def _reach_bounds(margins: np.ndarray) -> np.ndarray:
    """(S, N) for each stage the largest margin of the stages before it (-inf for the first).

    Under one shared threshold T a sample reaches stage k exactly when that bound is below T.
    """
    margins = np.asarray(margins, dtype=np.float64)
    before = np.maximum.accumulate(margins[:-1], axis=0)
    return np.concatenate([np.full((1, margins.shape[1]), -np.inf), before])


def shared_threshold_curve(margins: np.ndarray, correct: np.ndarray, stage_energy_pj: Sequence[float],
                           thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean energy of a cascade with one threshold for every stage (§4.2), for many thresholds.

    A sample escalates until a stage's score margin reaches T (the last stage always answers), paying the
    full cost of every stage it runs (a recompute at the next precision). margins, correct: (S, N);
    stage_energy_pj: (S,); thresholds: (B,). Returns two (B,) arrays; exact, O((S N + B) log(S N)).
    """
    margins = np.asarray(margins, dtype=np.float64)
    n_stages, n_samples = margins.shape
    reach_from = _reach_bounds(margins)
    # Stage k answers a sample for T in (reach_from[k], answer_until[k]]; the last stage for every T above.
    answer_until = np.vstack([margins[:-1], np.full((1, n_samples), np.inf)])
    answers = reach_from < answer_until
    low, high = reach_from[answers], answer_until[answers]
    weight = np.asarray(correct, dtype=np.float64)[answers]
    thresholds = np.asarray(thresholds, dtype=np.float64)
    hits = _weight_below(low, weight, thresholds) - _weight_below(high, weight, thresholds)
    reach = np.stack([np.searchsorted(np.sort(row), thresholds, side="left") for row in reach_from]) / n_samples
    return hits / n_samples, np.asarray(stage_energy_pj, dtype=np.float64) @ reach


def _weight_below(points: np.ndarray, weight: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Sum of `weight` over points strictly below each threshold."""
    order = np.argsort(points, kind="stable")
    cumulative = np.concatenate([[0.0], np.cumsum(weight[order])])
    return cumulative[np.searchsorted(points[order], thresholds, side="left")]


def fit_shared_threshold(margins: np.ndarray, correct: np.ndarray, reference_accuracy: float,
                         max_drop_pct: float = 1.0) -> float | None:
    """The smallest shared threshold whose cascade accuracy is within `max_drop_pct` points of the reference.

    The paper's rule (§4.2): fix the tolerated loss vs float, then take the smallest T meeting it, which
    escalates least. Candidates are 0, every non-last stage margin and +inf (always escalate); None when
    even +inf (the last stage alone) loses more.
    """
    margins = np.asarray(margins, dtype=np.float64)
    candidates = np.concatenate([[0.0], np.unique(margins[:-1]), [math.inf]])
    accuracy, _ = shared_threshold_curve(margins, correct, np.zeros(len(margins)), candidates)
    n = margins.shape[1]  # both accuracies are counts over these n rows: compared exactly, as integers
    extra = round(reference_accuracy * n) - np.round(accuracy * n).astype(np.int64)
    feasible = np.flatnonzero(extra <= allowed_extra_errors(max_drop_pct, n))
    return float(candidates[feasible[0]]) if len(feasible) else None


@dataclass(frozen=True)
class PrecisionCascade:
    """A precision cascade fitted on calibration: widths run in order, the shared threshold, its metrics."""

    bitwidths: tuple[int, ...]
    threshold: float
    accuracy: float
    energy_pj: float


def fit_precision_cascade(margins: np.ndarray, correct: np.ndarray, energy_pj: Sequence[float],
                          bitwidths: Sequence[int], reference_accuracy: float, max_drop_pct: float = 1.0,
                          max_stages: int = 4) -> PrecisionCascade | None:
    """The cheapest cascade over increasing subsets (1..max_stages) of `bitwidths`, each at its fitted threshold.

    margins, correct: (K, N) rows per width of `bitwidths`; energy_pj: (K,) one full inference per width.
    Every subset gets the smallest threshold meeting the drop (fit_shared_threshold); None if none does.
    """
    widths = validate_bitwidth_set(bitwidths)
    margins, correct, energy = np.asarray(margins), np.asarray(correct), np.asarray(energy_pj, dtype=np.float64)
    best: PrecisionCascade | None = None
    for size in range(1, min(max_stages, len(widths)) + 1):
        for rows in map(list, itertools.combinations(range(len(widths)), size)):
            threshold = fit_shared_threshold(margins[rows], correct[rows], reference_accuracy, max_drop_pct)
            if threshold is None:
                continue
            accuracy, cost = shared_threshold_curve(margins[rows], correct[rows], energy[rows], np.array([threshold]))
            if best is None or cost[0] < best.energy_pj:
                best = PrecisionCascade(tuple(widths[r] for r in rows), threshold, float(accuracy[0]), float(cost[0]))
    return best


_BAR_WIDTH = 40  # characters of the longest histogram bar


def render_histogram(result: Characterization, accuracies: list[float]) -> str:
    """One row per bar (each width, then float): accuracy there, samples whose minimum it is, share, text bar."""
    fractions = result.fractions
    scale = _BAR_WIDTH / max(float(fractions.max()), 1e-12)
    rows = [f"{'width':>6} {'accuracy':>9} {'minimum':>8} {'share':>8}"]
    for label, accuracy, count, share in zip(result.labels, accuracies, result.counts, fractions):
        rows.append(f"{label:>6} {accuracy:>9.2%} {count:>8} {share:>8.2%} {'#' * round(share * scale)}")
    return "\n".join(rows)
