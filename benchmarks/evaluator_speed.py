"""Time and peak memory of the exact threshold fronts, speed of the batch evaluator, gap of the S >= 4 method.

Usage: python benchmarks/evaluator_speed.py [--exact3-max-n N] [--gap-cases N] [--repeats R]. A few minutes with
the defaults on two loaded cores (the exact 3-stage front at N = 10^6 takes most of it, twice).
Two synthetic profiles, both with a float32 margin per stage drawn from Beta(5, 1.5) when right and Beta(1.5, 3)
when wrong, and stage costs 1, 4, 16:
- "independent": per stage an independent Bernoulli correctness (90 / 95 / 98.5 % accurate);
- "nested": each sample's (right0, right1, right2) pattern drawn from the joint frequencies measured on the
  quickstart cache (Mini 4, Mini 1, LeNet on the pooled calibration and test splits), so errors nest as in a real
  cascade (the big net is mostly right where the little one is right). The measured frequencies are printed.
Times are the median of --repeats runs for the 2-stage front and one run for the 3-stage front; peak memory is that
of one more run traced by tracemalloc (numpy reports to it). CPU seconds are given beside wall seconds because the
machine is shared; the 2-stage growth per decade (goal: linear within 1.5x) is taken from the median CPU seconds,
so that ms-scale waiting for a core does not decide it. Prints one line per measurement, then one
JSON line with exact2_seconds, exact3_seconds (independent profile), peak_mib (exact2), n (the largest N),
configs_per_s (N = 10^4, 3 stages) and more.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
import tracemalloc
from typing import Any

import numpy as np

from dse.core.optuna_adapter import hypervolume
from dse.exact import CascadeEvaluator, ThresholdFront, coordinate_front, exact_front_2, exact_front_3

SIZES = [10_000, 100_000, 1_000_000]
NESTED_NETS = ("mini4", "mini1", "lenet")  # stages of the nested profile, as in the quickstart cache


def nested_patterns() -> np.ndarray:
    """(8,) frequency of each (right0, right1, right2) pattern (index 4 right0 + 2 right1 + right2) on the
    quickstart cache, calibration and test splits pooled."""
    from dse import load_problem, load_spec  # the quickstart's score cache, built on first use

    problem, _ = load_problem(load_spec("quickstart"), log=lambda _: None)
    right = np.concatenate([problem.correct[split][[problem.index(name) for name in NESTED_NETS]]
                            for split in ("calib", "test")], axis=1).astype(np.int64)
    return np.bincount(4 * right[0] + 2 * right[1] + right[2], minlength=8) / right.shape[1]


def synthetic_cache(n: int, stages: int, seed: int = 0,
                    patterns: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Margins, correctness and per-stage costs of a synthetic cascade whose later stages are more accurate:
    independent per stage, or (3 stages) each sample's right/wrong pattern drawn from `patterns`."""
    rng = np.random.default_rng(seed)
    if patterns is None:
        accuracy = np.array([0.9, 0.95, 0.985])[:stages]
        correct = rng.random((stages, n)) < accuracy[:, None]
    else:
        drawn = rng.choice(8, n, p=patterns)
        correct = np.stack([(drawn >> shift) & 1 for shift in (2, 1, 0)]).astype(bool)[:stages]
    margins = np.where(correct, rng.beta(5, 1.5, (stages, n)), rng.beta(1.5, 3, (stages, n))).astype(np.float32)
    return margins, correct, np.array([1.0, 4.0, 16.0])[:stages]


def timed(call, *args, repeats: int = 1) -> tuple[float, float, float, Any]:
    """Median wall and CPU seconds of `repeats` calls, then peak MiB and result of one more call traced by
    tracemalloc."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        call(*args)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    tracemalloc.start()
    result = call(*args)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return float(np.median(wall)), float(np.median(cpu)), peak, result


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
        volumes = [hypervolume(np.column_stack([f.energy, f.errors]).astype(float), reference)
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
    parser.add_argument("--exact3-max-n", type=int, default=SIZES[-1], help="largest N for the exact 3-stage front")
    parser.add_argument("--gap-cases", type=int, default=100, help="random caches per stage count for the gap")
    parser.add_argument("--repeats", type=int, default=7, help="runs of the 2-stage front whose median is timed")
    args = parser.parse_args()
    if args.exact3_max_n < SIZES[0]:
        parser.error(f"--exact3-max-n must be at least {SIZES[0]}, got {args.exact3_max_n}")
    patterns = nested_patterns()
    print("nested profile, P(right0, right1, right2) from the quickstart cache "
          f"({', '.join(NESTED_NETS)}): " + ", ".join(f"{p:03b}: {f:.4f}" for p, f in enumerate(patterns)))
    exact2, exact2_cpu, peaks, summary = {}, {}, {}, {}
    for n in SIZES:
        margins, correct, cost = synthetic_cache(n, 3)
        exact2[n], exact2_cpu[n], peaks[n], _ = timed(exact_front_2, margins[:2], correct[:2], cost[:2],
                                                      repeats=args.repeats)
        print(f"exact_front_2 N={n:>9,}: {exact2[n]:.4f} s (median of {args.repeats}; CPU {exact2_cpu[n]:.4f} s), "
              f"peak {peaks[n]:.1f} MiB")
    for profile, profile_patterns in (("", None), ("_nested", patterns)):
        for n in [size for size in SIZES if size <= args.exact3_max_n]:
            margins, correct, cost = synthetic_cache(n, 3, patterns=profile_patterns)
            seconds, cpu, peak, result = timed(exact_front_3, margins, correct, cost)
            print(f"exact_front_3 {profile[1:] or 'independent'} N={n:>9,}: {seconds:.2f} s (CPU {cpu:.2f} s), "
                  f"peak {peak:.1f} MiB, {len(result.errors)} front points")
            label = f"{n:.0e}".replace("+0", "")
            summary.update({f"exact3{profile}_seconds_{label}": round(seconds, 3),
                            f"exact3{profile}_cpu_seconds_{label}": round(cpu, 3),
                            f"exact3{profile}_peak_mib_{label}": round(peak, 1)})
    # Growth from median CPU seconds: on shared cores the wall time of a 2 ms call is mostly waiting.
    growth = {f"exact2_growth_vs_linear_{a:.0e}_{b:.0e}".replace("+0", ""):
              round(exact2_cpu[b] / exact2_cpu[a] / 10, 2) for a, b in itertools.pairwise(SIZES)}
    rate, build = evaluator_rate(10_000, 100_000)
    print(f"CascadeEvaluator N=10,000, 3 stages: {rate:,.0f} configurations/s (build {build:.3f} s)")
    margins, correct, cost = synthetic_cache(SIZES[-1], 3)
    thresholds = np.random.default_rng(3).random((20_000, 2))
    seconds, _, evaluator_peak, _ = timed(lambda: CascadeEvaluator(margins, correct, cost, cost).evaluate(thresholds))
    print(f"CascadeEvaluator N={SIZES[-1]:,}, 3 stages, 20,000 vectors: {seconds:.2f} s with the build, "
          f"peak {evaluator_peak:.0f} MiB")
    largest = f"{max(n for n in SIZES if n <= args.exact3_max_n):.0e}".replace("+0", "")
    summary = {"exact2_seconds": round(exact2[SIZES[-1]], 4), "exact3_seconds": summary[f"exact3_seconds_{largest}"],
               "peak_mib": round(peaks[SIZES[-1]], 1), "n": SIZES[-1], "configs_per_s": round(rate),
               "exact3_n": int(float(largest)), "exact3_peak_mib": summary[f"exact3_peak_mib_{largest}"],
               "exact3_seconds_nested": summary[f"exact3_nested_seconds_{largest}"],
               "exact3_peak_mib_nested": summary[f"exact3_nested_peak_mib_{largest}"], **growth, **summary,
               "nested_patterns": [round(float(p), 4) for p in patterns],
               "evaluator_peak_mib_1e6": round(evaluator_peak, 1), "evaluator_build_seconds": round(build, 4)}
    summary.update(coordinate_gap(args.gap_cases, exact_tail=False))
    summary.update(coordinate_gap(args.gap_cases, exact_tail=True))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
