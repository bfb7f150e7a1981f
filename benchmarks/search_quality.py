"""Search quality: hypervolume of each method's calibration front against a reference front, at equal evaluations
and, on a space too large to enumerate, at equal wall time.

    python benchmarks/search_quality.py [--seeds 5] [--budgets 50,150,300] [--oracle-rows 300]
        [--large park2015-mnist] [--data ../shared/datasets/mnist] [--large-seconds 60] [--large-seeds 3]

Reference fronts come from a brute-force oracle (`benchmarks/threshold_oracle.py`: every threshold vector of every
structure evaluated sample by sample, sharing no code with the solver) wherever it is feasible: the quickstart and the
large space (two stages, all calibration rows). First, `oracle_agrees`: on every structure of the three spaces, the
front the tool's search records (`threshold_front`, then `evaluate`) has the oracle's error counts at its energies
(relative 1e-9); the combined space's three-stage structures are too many vectors for all 1,000 rows, so there both
are computed on `--oracle-rows` seeded random calibration rows (every structure, two- and three-stage alike).

(a) The quickstart (embedded digits, LeNet + Mini 1-8) and (b) `studies/combined-mnist.toml` (every mechanism, 100
structures): small spaces. The quickstart's reference is the oracle's union of fronts over its structures; the
combined space's is the solver's (`dse.exact`, exact for up to three stages, checked against the oracle as above).
Methods, each given the same number of evaluations (trials): ours (structures only, thresholds solved exactly; small
spaces enumerated); plain Optuna over raw thresholds (NSGA-II, TPE, random: `thresholds = "sampled"`); Park 2015's
lambda sweep (the exact static threshold for lambda values spread over the little nets). Hypervolume of (energy,
extra errors) on the calibration split, both minimised, with Optuna's hypervolume; reference point 1.1 x the largest
energy and the largest extra errors + 1 over every point of every structure's front. Every method's points are all
it evaluated (feasible or not).

(c) The large space: `--large` (default Park 2015's spec, 8 little nets x 6 SRAM sizes x 21 buffer partitions =
1,008 structures on full MNIST; `--data` is the MNIST directory), searched with enumeration off
(`enumerate_limit = 0`), no loss limit and no loss guarantee. Each method (ours: the tool's default search, TPE over
structures with every trial's front solved exactly; TPE, NSGA-II and random over raw thresholds) gets
`--large-seconds` of wall time per seed (it stops after the trial in flight when the time is up). Reference: the
Pareto front of the union of the oracle's fronts of all its structures; reference point 1.1 x that front's largest
energy and its largest extra errors + 1 (the box around the front, so that dominated structures add nothing). Also
reported: the share of that front's points some point of the method reaches (weakly dominates), and the energy gap:
the largest excess, over that front's points, of the method's least energy at no more extra errors (worst seed).

Tann's rule sets the thresholds of a net's increments and Jahier's one threshold over a precision cascade; the
quickstart has neither (only little/big pairs, Park's case), so they run on the combined space, each over the
structures its mechanism forms, against the exact front of those structures (ours reaches that front exactly: it
solves every structure's thresholds exactly and enumerates this space):
- Tann 2016 (`dse.mechanisms.incremental.tann2016.tune_thresholds`: the least-energy thresholds within a loss limit, by
  exact coordinate steps from its penalty path) on the 50 incremental structures (an optional little net, LeNet at half
  width, then LeNet at 8 or 16 bit with an effort setting), swept over loss limits;
- Jahier Pagliari 2018 (`dse.mechanisms.bitwidth.jahier2018.fit_shared_threshold`: one threshold shared by every stage,
  the smallest meeting a tolerated drop) on the 50 others (an optional little net, float or 8 bit, then LeNet at 8 or 16
  bit with an effort setting), swept over tolerated drops.
Each rule gets the same evaluation counts as the searches: a budget B spreads B // structures levels over every
structure (0 % and log-spaced from 0.05 % to 10 %), or one level (1 %) on B evenly spaced structures when B is
smaller; each level is one evaluated threshold vector, priced per stage by the rule and exactly by `evaluate`.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import optuna

import costmodel
from dse import (CascadeProblem, CascadeSpace, enumerate_structures, load_problem, load_spec, open_study,
                 replay_structure, run_search, search_study, study_results)
from dse.core.optuna_adapter import hypervolume as optuna_hypervolume
from dse.mechanisms.bitwidth.jahier2018 import fit_shared_threshold
from dse.mechanisms.big_little.park2015 import static_threshold
from dse.mechanisms.incremental.tann2016 import tune_thresholds
from _threshold_oracle import enumerate_vectors, pareto, same_front


def exact_front(problem, spec, structures=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(energy pJ, extra errors) of every point of the exact threshold front of every structure (or of those given)."""
    space = CascadeSpace(problem, spec)
    points = []
    for structure in structures or [replay_structure(space, p) for p in enumerate_structures(space, 100_000)]:
        stages = space.stages(structure)
        thresholds = problem.threshold_front(stages, structure.accelerator, structure.cascade.reuse)
        values = problem.evaluate(stages, thresholds, "calib", structure.accelerator, structure.cascade.reuse)
        points.append(np.c_[values.energy_j * 1e12, values.extra_errors])
    return np.concatenate(points)


def stage_energy(problem: CascadeProblem, stages: list[int], accelerator: costmodel.Accelerator,
                 reuse: bool) -> np.ndarray:
    """Each stage's energy (pJ) as the tool prices it: (S,), or (S, N) on the calibration rows when a stage's work
    varies per sample (effort knobs: the cost model's per-sample rule on the stage's executed fraction of its MACs).
    Energies are compared with the tool's `evaluate`, so a difference from its pricing shows as a disagreement."""
    priced = problem.stage_costs(stages, accelerator, reuse)
    work = problem.work.get("calib", {})
    if not any(stage in work for stage in stages):
        return np.array([cost.energy_pj for cost in priced])
    n = problem.margin["calib"].shape[1]
    rows = []
    for stage, cost in zip(stages, priced):
        bits = problem.variants[stage].bits
        acc = dataclasses.replace(accelerator, bits=bits) if bits else accelerator
        rows.append(costmodel.per_sample_cost(cost, cost.macs * work[stage], np.zeros(n), acc,
                                              problem.technology).energy_pj if stage in work
                    else np.full(n, cost.energy_pj))
    return np.stack(rows)


def oracle_fronts(problem: CascadeProblem, spec, rows: int | None = None, seed: int = 0  # type: ignore[no-untyped-def]
                  ) -> tuple[bool, int, np.ndarray]:
    """Whether the tool's front equals the brute-force oracle's on every structure of the spec's space (on `rows`
    seeded random calibration rows, or all), how many structures, and (energy pJ, extra errors) of every oracle
    front point."""
    space = CascadeSpace(problem, spec)
    structures = [replay_structure(space, p) for p in enumerate_structures(space, 100_000)]
    stages = [space.stages(structure) for structure in structures]  # scores every variant before any resplit
    n = problem.margin["calib"].shape[1]
    if rows is not None and rows < n:
        chosen = np.sort(np.random.default_rng(seed).choice(n, rows, replace=False))
        problem = problem.resplit(chosen, n + np.arange(problem.margin["test"].shape[1]))
    big_errors = int((~problem.correct["calib"][problem.big]).sum())
    groups: dict[tuple, list[int]] = {}  # structures with the same stages share one enumeration (only prices differ)
    for i, structure in enumerate(structures):
        groups.setdefault((tuple(stages[i]), structure.criterion), []).append(i)
    agrees, points = True, []
    for (cascade, criterion), members in groups.items():
        enumeration = enumerate_vectors(problem.confidence(criterion, "calib")[list(cascade)],
                                        problem.correct["calib"][list(cascade)])
        for i in members:
            accelerator, reuse = structures[i].accelerator, structures[i].cascade.reuse
            front = pareto(enumeration.thresholds, enumeration.errors,
                           enumeration.energy(stage_energy(problem, stages[i], accelerator, reuse)))
            thresholds = problem.threshold_front(stages[i], accelerator, reuse, criterion=criterion)
            tool = problem.evaluate(stages[i], thresholds, "calib", accelerator, reuse, criterion)
            order = np.argsort(tool.energy_j, kind="stable")
            if not same_front(front, tool.errors[order], tool.energy_j[order] * 1e12):
                agrees = False
                print(f"oracle disagrees: {' > '.join(problem.names[k] for k in cascade)} on {accelerator}")
            points.append(np.c_[front.energy, front.errors - big_errors])
    return agrees, len(structures), np.concatenate(points)


def non_dominated(points: np.ndarray) -> np.ndarray:
    """The points no other point weakly dominates (each distinct point once), by the first column ascending."""
    points = np.unique(points, axis=0)
    order = np.lexsort((points[:, 1], points[:, 0]))
    best, kept = np.inf, []
    for i in order:
        if points[i, 1] < best:
            kept.append(i)
            best = points[i, 1]
    return points[kept]


def share_reached(points: np.ndarray, front: np.ndarray, rtol: float = 1e-9) -> float:
    """The share of the reference front's points that some point weakly dominates (energy within `rtol`)."""
    order = np.argsort(points[:, 0])
    fewest = np.minimum.accumulate(points[order, 1])  # least extra errors at or below each energy
    last = np.searchsorted(points[order, 0], front[:, 0] * (1 + rtol), side="right") - 1
    return float(np.mean((last >= 0) & (fewest[np.maximum(last, 0)] <= front[:, 1])))


def energy_gap_pct(points: np.ndarray, front: np.ndarray) -> float | None:
    """The largest excess, in % of the reference front's energy at a point, of the method's least energy at no more
    extra errors than that point; None when the method has no point with as few errors as some front point."""
    order = np.argsort(points[:, 1], kind="stable")
    least = np.minimum.accumulate(points[order, 0])  # least energy at or below each error count
    last = np.searchsorted(points[order, 1], front[:, 1], side="right") - 1
    if (last < 0).any():
        return None
    return float(max(100.0 * (least[last] / front[:, 0] - 1).max(), 0.0))


class _TimeUp(Exception):
    """Raised by the timed search's callback once its wall time is spent."""


def timed_search(problem: CascadeProblem, spec, seconds: float) -> tuple[np.ndarray, int, float]:  # type: ignore[no-untyped-def]
    """Run the spec's search until `seconds` of wall time are spent (the trial in flight finishes): every point it
    recorded, its trials, and the seconds it took."""
    study = open_study(spec, optuna.storages.InMemoryStorage())
    start = time.perf_counter()

    def stop_when_spent(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if time.perf_counter() - start >= seconds:
            raise _TimeUp

    try:
        run_search(study, problem, spec, 10**9, progress=False, callbacks=[stop_when_spent])
    except _TimeUp:
        pass
    seconds_taken = time.perf_counter() - start
    return study_points(study), len(study.trials), seconds_taken


def large_problem(name: str, data: str) -> tuple[CascadeProblem, object]:
    """The large space's problem (nets trained or read from the score cache) and its spec: enumeration off, no loss
    limit, no loss guarantee."""
    spec = load_spec(name).with_overrides(data={"path": data} if data else {}, search={
        "max_accuracy_loss_pct": None, "loss_guarantee": None, "enumerate_limit": 0})
    return load_problem(spec, log=lambda _: None)[0], spec


def large_space(problem: CascadeProblem, spec, seconds: float, seeds: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Ours, TPE, NSGA-II and random at equal wall time on a space with enumeration off, against the oracle's front."""
    name = spec.name
    start = time.perf_counter()
    agrees, count, points = oracle_fronts(problem, spec)
    front = non_dominated(points)
    reference = np.array([front[:, 0].max() * 1.1, front[:, 1].max() + 1])
    best = hypervolume(front, reference)
    print(f"{name}: {count} structures, reference front of {len(front)} points from the oracle in "
          f"{time.perf_counter() - start:.1f} s (solver agrees: {agrees})")
    methods = {"ours": {}, **{sampler: {"sampler": sampler, "thresholds": "sampled"}
                              for sampler in ("tpe", "nsga2", "random")}}
    ratios: dict[str, list[float]] = {}
    counts: dict[str, list[int]] = {}
    shares: dict[str, list[float]] = {}
    gaps: dict[str, list[float | None]] = {}
    for seed in range(seeds):
        for method, overrides in methods.items():
            found, trials, took = timed_search(problem, spec.with_overrides(search={"seed": seed, **overrides}),
                                               seconds)
            ratios.setdefault(method, []).append(hypervolume(np.minimum(found, reference), reference) / best)
            counts.setdefault(method, []).append(trials)
            shares.setdefault(method, []).append(share_reached(found, front))
            gaps.setdefault(method, []).append(energy_gap_pct(found, front))
            print(f"  seed {seed} {method:<6}: {trials:>6} trials in {took:5.1f} s, HV ratio {ratios[method][-1]:.4f}, "
                  f"{shares[method][-1]:.1%} of the reference front reached, energy gap {gaps[method][-1]} %")
    return {"agrees": agrees, "structures": count,
            **{f"hv_ratio_{m}_large": round(float(np.mean(r)), 4) for m, r in ratios.items()},
            **{f"hv_ratio_{m}_large_min": round(float(np.min(r)), 4) for m, r in ratios.items()},
            **{f"trials_{m}_large": round(float(np.mean(c))) for m, c in counts.items()},
            **{f"front_share_{m}_large": round(float(np.mean(r)), 4) for m, r in shares.items()},
            **{f"energy_gap_pct_{m}_large": None if None in g else round(max(g), 3) for m, g in gaps.items()}}


def study_points(study) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(energy pJ, extra errors) of every point a study recorded."""
    trials = study_results(study).trials
    return np.array([[t.calib.energy_j * 1e12, t.calib.extra_errors] for t in trials], dtype=np.float64)


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Optuna's hypervolume of the points dominating the reference point."""
    inside = points[np.all(points < reference, axis=1)]
    return optuna_hypervolume(inside, reference) if len(inside) else 0.0


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
            points.append([values.energy_j[0] * 1e12, values.extra_errors[0]])
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
        points.append(np.c_[values.energy_j * 1e12, values.extra_errors])
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
    parser.add_argument("--oracle-rows", type=int, default=300, help="calibration rows of the combined space's check")
    parser.add_argument("--large", default="park2015-mnist", help="the large space's spec")
    parser.add_argument("--data", default="../shared/datasets/mnist", help="its data path ('': the spec's)")
    parser.add_argument("--large-seconds", type=float, default=60.0, help="wall time per method and seed")
    parser.add_argument("--large-seeds", type=int, default=3)
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    large_setup = large_problem(args.large, args.data)  # first: a missing data set stops the run before any search
    spec = load_spec("quickstart").with_overrides(search={"max_accuracy_loss_pct": None})
    problem, _ = load_problem(spec, log=lambda _: None)
    start = time.perf_counter()
    quickstart_agrees, _, exact = oracle_fronts(problem, spec)
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
    print(f"quickstart: reference from {len(exact)} points of every structure's oracle front in {exact_seconds:.2f} s "
          f"(solver agrees: {quickstart_agrees})")
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
    combined_agrees, count, _ = oracle_fronts(cproblem, combined, args.oracle_rows)
    print(f"combined: solver agrees with the oracle on {args.oracle_rows} calibration rows of all {count} structures: "
          f"{combined_agrees}")
    papers = papers_on_combined(cproblem, combined, budgets)
    start = time.perf_counter()
    large = large_space(*large_setup, args.large_seconds, args.large_seeds)
    print(f"large space: {time.perf_counter() - start:.0f} s in all")
    mean = {key: round(float(np.mean(value)), 4) for key, value in ratios.items()}
    print(json.dumps({
        "hv_ratio_ours_50": mean.get("ours_50"), "hv_ratio_ours_300": mean.get("ours_300"),
        "hv_ratio_nsga2_300": mean.get("nsga2_300"), "hv_ratio_tpe_300": mean.get("tpe_300"),
        "hv_ratio_random_300": mean.get("random_300"), "hv_ratio_sweep_300": mean.get("sweep_300"),
        "combined_hv_ratio_ours": round(combined_ratio, 4), "combined_seconds_ours": round(combined_seconds, 1),
        "quickstart_search_seconds": round(float(np.mean(seconds["ours_50"])), 2), "seeds": args.seeds,
        **{f"hv_ratio_sweep_{b}": mean.get(f"sweep_{b}") for b in budgets}, **papers,
        "oracle_agrees": bool(quickstart_agrees and combined_agrees and large["agrees"]),
        "oracle_rows_combined": args.oracle_rows, "large_space": args.large, "large_structures": large["structures"],
        "seconds_large": args.large_seconds, "large_seeds": args.large_seeds,
        **{key: value for key, value in large.items() if key.startswith(("hv_ratio_", "trials_", "front_share_", "energy_gap_"))}}))


if __name__ == "__main__":
    main()
