"""Search quality: hypervolume of each method's calibration front against the exact front, at equal evaluations.

    python benchmarks/search_quality.py [--seeds 5] [--budgets 50,150,300]

(a) The quickstart (embedded digits, LeNet + Mini 1-8) and (b) `studies/combined-mnist.toml` (every mechanism, 100
structures). The exact front is the union over every structure (listed exhaustively) of its exact threshold front
(`dse.exact`: one sort per two-stage structure, exact for three stages). Methods, each given the same number of
evaluations (trials): ours (structures only, thresholds solved exactly; small spaces enumerated); plain Optuna over
raw thresholds (NSGA-II, TPE, random: `thresholds = "sampled"`); Park 2015's lambda sweep (the exact static threshold
for lambda values spread over the little nets). Hypervolume of (energy, extra errors) on the calibration split, both
minimised, with Optuna's hypervolume; reference point 1.1 x the largest energy and the largest extra errors + 1.
Every method's points are all it evaluated (feasible or not).

Tann's rule sets the thresholds of a net's increments and Jahier's one threshold over a precision cascade; the
quickstart has neither (only little/big pairs, Park's case), so they run on the combined space, each over the
structures its mechanism forms, against the exact front of those structures (ours reaches that front exactly: it
solves every structure's thresholds exactly and enumerates this space):
- Tann 2016 (`dse.papers.tann2016.tune_thresholds`: the least-energy thresholds within a loss limit, by exact
  coordinate steps from its penalty path) on the 50 incremental structures (an optional little net, LeNet at half
  width, then LeNet at 8 or 16 bit with an effort setting), swept over loss limits;
- Jahier Pagliari 2018 (`dse.papers.jahier2018.fit_shared_threshold`: one threshold shared by every stage, the
  smallest meeting a tolerated drop) on the 50 others (an optional little net, float or 8 bit, then LeNet at 8 or
  16 bit with an effort setting), swept over tolerated drops.
Each rule gets the same evaluation counts as the searches: a budget B spreads B // structures levels over every
structure (0 % and log-spaced from 0.05 % to 10 %), or one level (1 %) on B evenly spaced structures when B is
smaller; each level is one evaluated threshold vector, priced per stage by the rule and exactly by `evaluate`.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from optuna._hypervolume import compute_hypervolume

from dse import (CascadeProblem, CascadeSpace, enumerate_structures, load_problem, load_spec, replay_structure,
                 search_study, study_results)
from dse.papers.jahier2018 import fit_shared_threshold
from dse.papers.park2015 import static_threshold
from dse.papers.tann2016 import tune_thresholds


def exact_front(problem, spec, structures=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(energy pJ, extra errors) of every point of the exact threshold front of every structure (or of those given)."""
    space = CascadeSpace(problem, spec)
    points = []
    for structure in structures or [replay_structure(space, p) for p in enumerate_structures(space, 100_000)]:
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


def tann_rule(problem: CascadeProblem, stages: list[int], stage_energy: np.ndarray, loss_pct: float) -> np.ndarray:
    """Tann 2016's thresholds for one loss limit (vs the big net's calibration accuracy)."""
    reference = float(problem.correct["calib"][problem.big].mean())
    return tune_thresholds(problem.margin["calib"][stages], problem.correct["calib"][stages], stage_energy, reference,
                           loss_pct)


def jahier_rule(problem: CascadeProblem, stages: list[int], stage_energy: np.ndarray, drop_pct: float) -> np.ndarray:
    """Jahier Pagliari 2018's shared threshold for one tolerated drop (+inf: every sample runs every stage); the rule
    does not look at prices, so `stage_energy` is unused."""
    reference = float(problem.correct["calib"][problem.big].mean())
    threshold = fit_shared_threshold(problem.margin["calib"][stages], problem.correct["calib"][stages], reference,
                                     drop_pct)
    return np.full(len(stages) - 1, np.inf if threshold is None else threshold)


def paper_sweep(problem, space, structures, rule, budget: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(energy pJ, extra errors) of `budget` evaluations of a paper's threshold rule spread over `structures`."""
    per = budget // len(structures)
    if per:
        chosen, levels = structures, np.r_[0.0, np.geomspace(0.05, 10, per - 1)] if per > 1 else np.array([1.0])
    else:
        chosen = [structures[i] for i in np.linspace(0, len(structures) - 1, budget).astype(int)]
        levels = np.array([1.0])
    points = []
    for structure in chosen:
        stages = space.stages(structure)
        costs = problem.stage_costs(stages, structure.accelerator, structure.cascade.reuse)
        stage_energy = np.array([cost.energy_pj for cost in costs])
        thresholds = np.array([rule(problem, stages, stage_energy, level) for level in levels]).reshape(len(levels), -1)
        values = problem.evaluate(stages, thresholds, "calib", structure.accelerator, structure.cascade.reuse)
        points.append(np.c_[values["energy_pj"], values["extra_errors"]])
    return np.concatenate(points)


def papers_on_combined(problem, spec, budgets: list[int]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Hypervolume ratios and seconds of Tann's and Jahier's rules on the combined space, each against the exact front
    of the structures it applies to (incremental ones, and the others)."""
    space = CascadeSpace(problem, spec)
    structures = [replay_structure(space, p) for p in enumerate_structures(space, 100_000)]
    out = {}
    for name, rule, applies in (("tann", tann_rule, True), ("jahier", jahier_rule, False)):
        mine = [s for s in structures if s.cascade.reuse == applies]
        exact = exact_front(problem, spec, mine)
        reference = np.array([exact[:, 0].max() * 1.1, exact[:, 1].max() + 1])
        best = hypervolume(exact, reference)
        for budget in budgets:
            start = time.perf_counter()
            points = paper_sweep(problem, space, mine, rule, budget)
            out[f"seconds_{name}_{budget}"] = round(time.perf_counter() - start, 2)
            out[f"hv_ratio_{name}_{budget}"] = round(hypervolume(np.minimum(points, reference), reference) / best, 4)
        print(f"combined, {name} rule on its {len(mine)} structures: HV ratio "
              + " ".join(f"@{b}: {out[f'hv_ratio_{name}_{b}']:.4f} ({out[f'seconds_{name}_{b}']:.1f} s)"
                         for b in budgets))
    return out


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
    papers = papers_on_combined(cproblem, combined, budgets)
    mean = {key: round(float(np.mean(value)), 4) for key, value in ratios.items()}
    print(json.dumps({
        "hv_ratio_ours_50": mean.get("ours_50"), "hv_ratio_ours_300": mean.get("ours_300"),
        "hv_ratio_nsga2_300": mean.get("nsga2_300"), "hv_ratio_tpe_300": mean.get("tpe_300"),
        "hv_ratio_random_300": mean.get("random_300"), "hv_ratio_sweep_300": mean.get("sweep_300"),
        "combined_hv_ratio_ours": round(combined_ratio, 4), "combined_seconds_ours": round(combined_seconds, 1),
        "quickstart_search_seconds": round(float(np.mean(seconds["ours_50"])), 2), "seeds": args.seeds,
        **{f"hv_ratio_sweep_{b}": mean.get(f"sweep_{b}") for b in budgets}, **papers}))


if __name__ == "__main__":
    main()
