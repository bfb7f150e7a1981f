"""Time and peak memory of the exact threshold fronts, speed of the batch evaluator, gap of the S >= 4 method.

Usage: python benchmarks/evaluator_speed.py [--exact3-max-n N] [--gap-cases N]. About a minute with the
defaults; --exact3-max-n 100000 adds minutes (the exact 3-stage front grows about as N^2 on these caches).
Synthetic caches: per stage a Bernoulli correctness (90 / 95 / 98.5 % accurate) and a float32 margin drawn from
Beta(5, 1.5) when right and Beta(1.5, 3) when wrong; stage costs 1, 4, 16. Prints one line per measurement, then
one JSON line with exact2_seconds, exact3_seconds, peak_mib (exact2, at the largest n), n, configs_per_s
(N = 10^4, 3 stages) and more.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
import tracemalloc

import numpy as np
from optuna._hypervolume import compute_hypervolume

from dse.exact import CascadeEvaluator, ThresholdFront, coordinate_front, exact_front_2, exact_front_3

SIZES = [10_000, 100_000, 1_000_000]


def synthetic_cache(n: int, stages: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Margins, correctness and per-stage costs of a synthetic cascade whose later stages are more accurate."""
    rng = np.random.default_rng(seed)
    accuracy = np.array([0.9, 0.95, 0.985])[:stages]
    correct = rng.random((stages, n)) < accuracy[:, None]
    margins = np.where(correct, rng.beta(5, 1.5, (stages, n)), rng.beta(1.5, 3, (stages, n))).astype(np.float32)
    return margins, correct, np.array([1.0, 4.0, 16.0])[:stages]


def timed(call, *args, repeats: int = 1) -> tuple[float, float]:
    """Least seconds of `repeats` calls, then peak MiB of one more call traced by tracemalloc (numpy reports to it)."""
    seconds = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        call(*args)
        seconds = min(seconds, time.perf_counter() - start)
    tracemalloc.start()
    call(*args)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def evaluator_rate(n: int, batch: int) -> tuple[float, float]:
    """Configurations per second of the 3-stage evaluator (after its one-off build), and the build's seconds."""
    margins, correct, cost = synthetic_cache(n, 3, seed=1)
    start = time.perf_counter()
    evaluator = CascadeEvaluator(margins, correct, cost, cost / 10)
    build = time.perf_counter() - start
    thresholds = np.random.default_rng(2).choice(margins[:2].ravel(), (batch, 2))
    start = time.perf_counter()
    evaluator.evaluate(thresholds)
    return batch / (time.perf_counter() - start), build


def enumerated_front(margins: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> ThresholdFront:
    """The exact front of a small cascade: every threshold vector evaluated, then Pareto-filtered."""
    grids = [np.r_[np.inf, np.unique(margins[k])[::-1]] for k in range(margins.shape[0] - 1)]
    vectors = np.array(list(itertools.product(*grids)))
    every = CascadeEvaluator(margins, correct, cost, cost).evaluate(vectors)
    order = np.lexsort((every.errors, every.energy))
    keep = order[every.errors[order] < np.r_[np.inf, np.minimum.accumulate(every.errors[order])[:-1]]]
    return ThresholdFront(vectors[keep], every.errors[keep], every.energy[keep])


def coordinate_gap(cases: int, exact_tail: bool) -> dict[str, float]:
    """Hypervolume ratio of coordinate_front to full enumeration on small random caches with 4 and 5 stages."""
    ratios: dict[int, list[float]] = {4: [], 5: []}
    for stages, seed in itertools.product(ratios, range(cases)):
        rng = np.random.default_rng(seed)
        n = 10 if stages == 4 else 8
        margins = rng.integers(0, 12, (stages, n)) / 11
        correct = rng.random((stages, n)) < np.linspace(0.5, 0.9, stages)[:, None]
        cost = rng.uniform(0, 3, (stages, n) if seed % 2 else stages)
        exact = enumerated_front(margins, correct, cost)
        found = coordinate_front(margins, correct, cost, exact_tail=exact_tail)
        all_stages = np.sum(cost) / (n if cost.ndim == 2 else 1)  # mean cost when every sample runs every stage
        reference = np.array([all_stages * 1.1 + 1e-9, n + 1.0])
        volumes = [compute_hypervolume(np.column_stack([f.energy, f.errors]).astype(float), reference)
                   for f in (found, exact)]
        ratios[stages].append(volumes[0] / volumes[1])
    summary, label = {}, "_tail" if exact_tail else ""
    for stages, values in ratios.items():
        summary[f"front{stages}{label}_hv_ratio_min"] = round(float(min(values)), 5)
        summary[f"front{stages}{label}_hv_ratio_mean"] = round(float(np.mean(values)), 5)
        print(f"coordinate_front(exact_tail={exact_tail}), {stages} stages, {cases} caches: "
              f"hypervolume ratio min {min(values):.5f} mean {np.mean(values):.5f}")
    return summary


def main() -> None:
    """Run every measurement and print the summary JSON last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exact3-max-n", type=int, default=10_000, help="largest N for the exact 3-stage front")
    parser.add_argument("--gap-cases", type=int, default=100, help="random caches per stage count for the gap")
    args = parser.parse_args()
    exact2, exact3, peaks = {}, {}, {}
    for n in SIZES:
        margins, correct, cost = synthetic_cache(n, 3)
        exact2[n], peaks[n] = timed(exact_front_2, margins[:2], correct[:2], cost[:2], repeats=3)
        print(f"exact_front_2 N={n:>9,}: {exact2[n]:.4f} s, peak {peaks[n]:.1f} MiB")
        if n <= args.exact3_max_n:
            exact3[n], peak3 = timed(exact_front_3, margins, correct, cost)
            print(f"exact_front_3 N={n:>9,}: {exact3[n]:.3f} s, peak {peak3:.1f} MiB")
    growth = {f"exact2_growth_vs_linear_{a:.0e}_{b:.0e}".replace("+0", ""): round(exact2[b] / exact2[a] / 10, 2)
              for a, b in itertools.pairwise(SIZES)}
    rate, build = evaluator_rate(10_000, 100_000)
    print(f"CascadeEvaluator N=10,000, 3 stages: {rate:,.0f} configurations/s (build {build:.3f} s)")
    margins, correct, cost = synthetic_cache(SIZES[-1], 3)
    thresholds = np.random.default_rng(3).random((20_000, 2))
    seconds, evaluator_peak = timed(lambda: CascadeEvaluator(margins, correct, cost, cost).evaluate(thresholds))
    print(f"CascadeEvaluator N={SIZES[-1]:,}, 3 stages, 20,000 vectors: {seconds:.2f} s with the build, "
          f"peak {evaluator_peak:.0f} MiB")
    largest3 = max(exact3)
    summary = {"exact2_seconds": round(exact2[SIZES[-1]], 4),
               "exact3_seconds": round(exact3[SIZES[-1]], 3) if SIZES[-1] in exact3 else None,
               "peak_mib": round(peaks[SIZES[-1]], 1), "n": SIZES[-1], "configs_per_s": round(rate),
               **growth,
               "exact3_largest_n": largest3, "exact3_seconds_at_largest_n": round(exact3[largest3], 3),
               "evaluator_peak_mib_1e6": round(evaluator_peak, 1), "evaluator_build_seconds": round(build, 4)}
    summary.update(coordinate_gap(args.gap_cases, exact_tail=False))
    summary.update(coordinate_gap(args.gap_cases, exact_tail=True))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
