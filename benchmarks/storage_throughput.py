"""Completed trials per second of one study shared by 1, 2 and 4 worker processes, per storage.

Each worker runs the search loop of `dse worker` (heartbeats on, `--until` total, its own sampler stream) with an
objective as cheap as ours (4 parameters, one record attribute of 30 numbers, 2 values), so the figure is the
storage's and Optuna's bookkeeping: what limits a study whose evaluation takes under a millisecond.

Usage: python benchmarks/storage_throughput.py [--trials N] [--postgres URL] (default: $DSE_TEST_POSTGRES_URL;
without one PostgreSQL is skipped). Prints one line per configuration, then one JSON line
{"sqlite": {"1": trials_per_s, ...}, "journal": {...}, "postgresql": {...}}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path

WORKERS = (1, 2, 4)


def objective(trial):  # type: ignore[no-untyped-def]
    """Four floats, one record attribute, two objective values: the shape of a cascade trial."""
    x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(4)]
    trial.set_user_attr("record", {f"metric_{i}": x[i % 4] * i for i in range(30)})
    return sum(x), max(x)


def worker(url: str, name: str, until: int, worker_id: int, start: multiprocessing.synchronize.Event) -> None:
    """One worker process: open the storage as `dse worker` does, wait for the start, run until the total."""
    import optuna

    from dse import open_storage
    from dse.core.workers import StopRequest, run_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=open_storage(url), study_name=name, directions=["minimize"] * 2,
                                sampler=optuna.samplers.RandomSampler(seed=worker_id), load_if_exists=True)
    start.wait()
    run_trials(study, objective, None, until, StopRequest())


def measure(url: str, workers: int, trials: int) -> float:
    """Completed trials per second of `workers` processes filling one fresh study with `trials` trials."""
    context = multiprocessing.get_context("spawn")
    name = f"bench-{uuid.uuid4().hex[:8]}"
    start = context.Event()
    processes = [context.Process(target=worker, args=(url, name, trials, i, start)) for i in range(workers)]
    for process in processes:
        process.start()
    time.sleep(8.0)  # every process has imported Optuna and opened the storage
    began = time.perf_counter()
    start.set()
    for process in processes:
        process.join()
    wall = time.perf_counter() - began
    if any(process.exitcode for process in processes):
        raise SystemExit(f"a worker failed on {url}")
    if url.startswith("postgresql"):  # the server keeps studies: leave it as it was
        import optuna

        from dse import open_storage

        optuna.delete_study(study_name=name, storage=open_storage(url, None, create=False))
    return trials / wall


def main() -> None:
    """Measure every storage at 1, 2 and 4 workers and print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="completed trials per measurement")
    parser.add_argument("--postgres", default=os.environ.get("DSE_TEST_POSTGRES_URL"), help="PostgreSQL URL")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for workers in WORKERS:
            urls = {"sqlite": f"sqlite:///{Path(folder) / f'study{workers}.db'}",
                    "journal": f"journal:///{Path(folder) / f'study{workers}.log'}"}
            if args.postgres:
                urls["postgresql"] = args.postgres
            for storage, url in urls.items():
                rate = measure(url, workers, args.trials)
                results.setdefault(storage, {})[str(workers)] = round(rate, 1)
                print(f"{storage:<11} {workers} workers: {rate:7.1f} trials/s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
