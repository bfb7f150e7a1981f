"""Wall time of `dse run` on the quickstart with a warm score cache, against a baseline checkout in the same run.

    python benchmarks/warm_run.py [--repeats 5] [--baseline DIR] [--cache-dir DIR]

Each timing is a fresh `python -m dse.cli run --no-progress` subprocess (PYTHONPATH = the tree it times) writing to
a fresh output directory, with the score cache shared through DSE_CACHE_DIR (default: $DSE_CACHE_DIR, else the
usual cache); one untimed run per tree first fills the cache and leaves the tree's bytecode (__pycache__, even where
PYTHONDONTWRITEBYTECODE is set, as an installed package has it). The medians of `--repeats` runs are reported for:
this tree and the baseline, taking turns (`--baseline DIR`: a checkout of an older commit, e.g. `git worktree add
/tmp/wave1 65795f7`, run with its own built-in quickstart, whatever its spec format); this tree again on the study
it left (the re-run: nothing left to search, outputs rewritten). Then, in this process, the per-trial cost of the
quickstart's search (its 8 enumerated structures) on a fresh SQLite file and in memory, and whether the run's
front holds every point of the exact front (every structure's exact threshold front, merged, within the loss limit).
Compare the times within one run of this script: the machine's load moves them all. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def dse_run(tree: Path, out: Path, cache_dir: Path, json_output: bool = False) -> tuple[float, str]:
    """Seconds of one `dse run` of `tree` into `out`, and its stdout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}  # as installed:
    env.update(PYTHONPATH=str(tree), DSE_CACHE_DIR=str(cache_dir))  # the first run leaves each tree's bytecode
    command = [sys.executable, "-m", "dse.cli", *(["--json"] if json_output else []), "run", "--no-progress",
               "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=out.parent, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} (PYTHONPATH={tree}) failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def interleaved_medians(trees: dict[str, Path], root: Path, cache_dir: Path, repeats: int) -> dict[str, float]:
    """Median seconds of `repeats` runs of each tree, each into a fresh output directory, the trees taking turns (so
    that a change in the machine's load hits them alike), after one untimed run of each."""
    for label, tree in trees.items():
        dse_run(tree, root / f"{label}-warmup", cache_dir)
    times: dict[str, list[float]] = {label: [] for label in trees}
    for i in range(repeats):
        for label, tree in trees.items():
            times[label].append(dse_run(tree, root / f"{label}-{i}", cache_dir)[0])
    for label, values in times.items():
        print(f"{label}: " + ", ".join(f"{t:.2f}" for t in values) + f" s (median {statistics.median(values):.2f} s)")
    return {label: statistics.median(values) for label, values in times.items()}


def exact_front(problem, spec) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(energy pJ, extra errors) of the exact front within the loss limit: every structure's exact threshold front,
    merged, feasible points only, dominated and repeated points dropped, by energy."""
    from dse import CascadeSpace, enumerate_structures, replay_structure
    from dse.exact import allowed_extra_errors

    space = CascadeSpace(problem, spec)
    points = []
    for params in enumerate_structures(space, 100_000):
        structure = replay_structure(space, params)
        stages, accelerator, reuse = space.stages(structure), structure.accelerator, structure.cascade.reuse
        thresholds = problem.threshold_front(stages, accelerator, reuse, criterion=structure.criterion)
        values = problem.evaluate(stages, thresholds, "calib", accelerator, reuse, structure.criterion)
        points.append(np.c_[values.energy_j * 1e12, values.extra_errors])
    merged = np.concatenate(points)
    allowed = allowed_extra_errors(spec.search.max_accuracy_loss_pct, problem.margin["calib"].shape[1])
    merged = np.unique(merged[merged[:, 1] <= allowed], axis=0)
    front = [p for p in merged if not np.any(np.all(merged <= p, axis=1) & np.any(merged < p, axis=1))]
    return np.array(front)


def per_trial(problem, spec, storage_url: str | None, repeats: int = 3) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median ms per trial of the spec's search (its enumerated structures) on a fresh study in `storage_url`
    (None: in memory), and the SQL statements per trial (0 in memory)."""
    import optuna
    import sqlalchemy

    from dse import open_storage, open_study
    from dse.core.facts import record_study_facts
    from dse.core.objective import CascadeObjective
    from dse.core.study import enqueue_structures
    from dse.core.workers import StopRequest, run_trials

    times, statements = [], []
    for i in range(repeats):
        storage = open_storage(f"{storage_url}{i}.db") if storage_url else optuna.storages.InMemoryStorage()
        study = open_study(spec, storage)
        record_study_facts(study, problem, spec)
        objective, count = CascadeObjective(problem, spec), [0]
        if storage_url:
            sqlalchemy.event.listen(storage.engine, "before_cursor_execute",
                                    lambda *_: count.__setitem__(0, count[0] + 1))
        start = time.perf_counter()  # what `run_search` times, less the facts
        trials = run_trials(study, objective, enqueue_structures(study, objective.space, spec, spec.search.n_trials),
                            None, StopRequest())
        times.append(1000.0 * (time.perf_counter() - start) / trials)
        statements.append(count[0] / trials)
    return statistics.median(times), statistics.median(statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--cache-dir", type=Path, help="score cache shared by every run [default: $DSE_CACHE_DIR "
                                                        "or the usual cache]")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from dse import load_problem, load_spec
    from nets import default_cache_dir

    cache_dir = (args.cache_dir or default_cache_dir()).resolve()
    print(f"load average {os.getloadavg()[0]:.2f}; cache {cache_dir}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trees = {"this tree": HERE, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
        medians = interleaved_medians(trees, root, cache_dir, args.repeats)
        warm, baseline = medians["this tree"], medians.get("baseline")
        reruns = [dse_run(HERE, root / "this tree-0", cache_dir)[0] for _ in range(args.repeats)]
        rerun = statistics.median(reruns)
        print(f"re-run on the existing study: " + ", ".join(f"{t:.2f}" for t in reruns) + f" s (median {rerun:.2f} s)")
        _, stdout = dse_run(HERE, root / "front", cache_dir, json_output=True)
        spec = load_spec("quickstart")
        problem, _ = load_problem(spec, str(cache_dir), log=lambda *_: None)
        sqlite_ms, statements = per_trial(problem, spec, f"sqlite:///{root}/storage")
        memory_ms, _ = per_trial(problem, spec, None)
    run_front = np.array([[row["calib_energy_j"] * 1e12, row["calib_extra_errors"]]
                          for row in json.loads(stdout)["pareto"]])
    exact = exact_front(problem, spec)
    found = sum(bool(np.any(np.isclose(run_front[:, 0], e, rtol=1e-9, atol=0) & (run_front[:, 1] == k)))
                for e, k in exact)
    print(f"per trial: {sqlite_ms:.1f} ms and {statements:.1f} SQL statements on SQLite, {memory_ms:.1f} ms in memory; the run's front has "
          f"{len(run_front)} points, holding {found} of the {len(exact)} exact front points")
    print(json.dumps({"warm_run_seconds": round(warm, 3),
                      "baseline_seconds": round(baseline, 3) if baseline else None,
                      "speedup_x": round(baseline / warm, 2) if baseline else None, "rerun_seconds": round(rerun, 3),
                      "sqlite_ms_per_trial": round(sqlite_ms, 2), "memory_ms_per_trial": round(memory_ms, 2),
                      "sqlite_statements_per_trial": round(statements, 1),
                      "front_points": len(run_front), "exact_front_points": len(exact),
                      "exact_front_points_found": found, "load_average": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
