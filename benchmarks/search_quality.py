"""Search quality: hypervolume of each method's calibration front against the exact front, at equal evaluations.

    python benchmarks/search_quality.py [--seeds 5] [--budgets 50,150,300]

(a) The quickstart (embedded digits, LeNet + Mini 1-8) and (b) `studies/combined-mnist.toml` (every mechanism, 100
structures). The exact front is the union over every structure (listed exhaustively) of its exact threshold front
(`dse.exact`: one sort per two-stage structure, exact for three stages). Methods, each given the same number of
evaluations (trials): ours (structures only, thresholds solved exactly; small spaces enumerated); plain Optuna over
raw thresholds (NSGA-II, TPE, random: `thresholds = "sampled"`); Park 2015's lambda sweep (the exact static threshold
for lambda values spread over the little nets). Hypervolume of (energy, extra errors) on the calibration split, both
minimised, with Optuna's hypervolume; reference point 1.1 x the largest energy and the largest extra errors + 1.
Every method's points are all it evaluated (feasible or not). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from optuna._hypervolume import compute_hypervolume

from dse import (CascadeSpace, enumerate_structures, load_problem, load_spec, replay_structure, search_study,
                 study_results)
from dse.papers.park2015 import static_threshold


def exact_front(problem, spec) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(energy pJ, extra errors) of every point of every structure's exact threshold front."""
    space = CascadeSpace(problem, spec)
    points = []
    for params in enumerate_structures(space, 100_000):
        structure = replay_structure(space, params)
        stages = space.stages(structure)
        thresholds = problem.threshold_front(stages, structure.accelerator, structure.cascade.reuse)
        values = problem.evaluate(stages, thresholds, "calib", structure.accelerator, structure.cascade.reuse)
        points.append(np.c_[values["energy_pj"], values["extra_errors"]])
    return np.concatenate(points)


def study_points(study) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(energy pJ, extra errors) of every point a study recorded."""
    trials = study_results(study).trials
    return np.array([[t.calib.energy_j * 1e12, t.calib.extra_errors] for t in trials], dtype=np.float64)


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Optuna's hypervolume of the points dominating the reference point."""
    inside = points[np.all(points < reference, axis=1)]
    return float(compute_hypervolume(inside, reference)) if len(inside) else 0.0


def lambda_sweep(problem, littles: list[str], budget: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Park's static threshold for `budget` (little net, lambda) pairs, lambdas log-spaced per little net."""
    per = max(1, budget // len(littles))
    lambdas = np.r_[0.0, np.geomspace(1e-2, 1e2, per - 1)] if per > 1 else np.array([1.0])
    margin, correct = problem.margin["calib"], problem.correct["calib"]
    points = []
    for name in littles:
        i = problem.index(name)
        for lam in lambdas:
            theta = static_threshold(margin[i], correct[i], correct[problem.big], lam).threshold
            values = problem.evaluate([i, problem.big], np.array([[theta]]), "calib")
            points.append([values["energy_pj"][0], values["extra_errors"][0]])
    return np.array(points, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="50,150,300")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    spec = load_spec("quickstart").with_overrides(search={"max_accuracy_loss_pct": None})
    problem, _ = load_problem(spec, log=lambda _: None)
    start = time.perf_counter()
    exact = exact_front(problem, spec)
    exact_seconds = time.perf_counter() - start
    reference = np.array([exact[:, 0].max() * 1.1, exact[:, 1].max() + 1])
    best = hypervolume(exact, reference)
    ratios: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    littles = list(spec.section("little").nets)
    for budget in budgets:
        for seed in range(args.seeds):
            methods = {"ours": spec.with_overrides(search={"seed": seed})}
            for sampler in ("nsga2", "tpe", "random"):
                methods[sampler] = spec.with_overrides(search={"seed": seed, "sampler": sampler, "thresholds": "sampled",
                                                               "enumerate_limit": 0})
            for name, method in methods.items():
                start = time.perf_counter()
                points = study_points(search_study(problem, method, budget))
                seconds.setdefault(f"{name}_{budget}", []).append(time.perf_counter() - start)
                ratios.setdefault(f"{name}_{budget}", []).append(hypervolume(np.minimum(points, reference), reference) / best)
        ratios[f"sweep_{budget}"] = [hypervolume(lambda_sweep(problem, littles, budget), reference) / best]
    print(f"quickstart: exact front from {len(exact)} points of every structure's exact front in {exact_seconds:.2f} s")
    print(f"{'method':<8} " + " ".join(f"{'HV@' + str(b):>14}" for b in budgets) + "   seconds per search")
    for name in ("ours", "nsga2", "tpe", "random", "sweep"):
        cells = [f"{np.mean(ratios[f'{name}_{b}']):.4f}±{np.std(ratios[f'{name}_{b}']):.4f}" for b in budgets]
        times = [f"{np.mean(seconds[f'{name}_{b}']):.2f}" for b in budgets if f"{name}_{b}" in seconds]
        print(f"{name:<8} " + " ".join(f"{c:>14}" for c in cells) + "   " + "/".join(times))

    combined = load_spec("combined-mnist").with_overrides(search={"max_accuracy_loss_pct": None})
    cproblem, _ = load_problem(combined, log=lambda _: None)
    start = time.perf_counter()
    points = study_points(search_study(cproblem, combined, 10_000))
    combined_seconds = time.perf_counter() - start
    cexact = exact_front(cproblem, combined)
    creference = np.array([max(cexact[:, 0].max(), points[:, 0].max()) * 1.1, max(cexact[:, 1].max(), points[:, 1].max()) + 1])
    combined_ratio = hypervolume(points, creference) / hypervolume(cexact, creference)
    print(f"combined: {len(points)} points from every structure in {combined_seconds:.1f} s; HV ratio {combined_ratio:.4f}")
    mean = {key: round(float(np.mean(value)), 4) for key, value in ratios.items()}
    print(json.dumps({
        "hv_ratio_ours_50": mean.get("ours_50"), "hv_ratio_ours_300": mean.get("ours_300"),
        "hv_ratio_nsga2_300": mean.get("nsga2_300"), "hv_ratio_tpe_300": mean.get("tpe_300"),
        "hv_ratio_random_300": mean.get("random_300"), "hv_ratio_sweep_300": mean.get("sweep_300"),
        "combined_hv_ratio_ours": round(combined_ratio, 4), "combined_seconds_ours": round(combined_seconds, 1),
        "quickstart_search_seconds": round(float(np.mean(seconds["ours_50"])), 2), "seeds": args.seeds}))


if __name__ == "__main__":
    main()
