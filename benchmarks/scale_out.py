"""Scale-out from an empty database: K = 1, 2, 4 `dse worker` processes on a new PostgreSQL database and a cold
shared cache, until the study holds N completed trials.

Per K: the wall time from the start of the workers to N completed trials (training included), the trainings done
(lines of the cache's build log), and the completed trials per second of the search phase (from the first worker
starting its search to the last one ending). Each K gets a database and a cache of its own, both new; the database
is dropped afterwards.

Usage: python benchmarks/scale_out.py [--trials N] [--workers 1,2,4] [--postgres URL] (default: $DSE_TEST_POSTGRES_URL).
Without a reachable server it prints one JSON line {"skipped": reason}. Last line: {"trainings_per_variant": {K: ...},
"wall_s": {K: ...}, "search_trials_per_s": {K: ...}, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SPEC = """
version = 2
name = "scale-out"
description = "a sampled cascade over six small nets, one epoch each"
[data]
dataset = "mnist5k"
[training]
epochs = 1
batch_size = 128
[nets]
big = "lenet"
[little]
nets = ["mini4", "mini5", "mini6", "mini7", "mini8"]
[search]
n_trials = 10
sampler = "random"
max_accuracy_loss_pct = 5.0
enumerate_limit = 0
thresholds = "sampled"
"""
DONE = re.compile(r"^worker: (\d+) trials into '.*' in ([0-9.]+) s$", re.MULTILINE)
TO_TRAIN = re.compile(r"variants cached; (\d+) to train")


@contextmanager
def new_database(server: str) -> Iterator[str]:
    """A new database with a random name on the server of `server`, dropped on exit."""
    import sqlalchemy

    url = sqlalchemy.engine.make_url(server)
    name = f"dse_scale_out_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def skip_reason(server: str | None) -> str | None:
    """Why the benchmark cannot run against `server`, or None when it can."""
    if not server:
        return "no PostgreSQL server: set DSE_TEST_POSTGRES_URL or pass --postgres (bash .ci/postgres.sh starts one)"
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(server, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any driver or connection error: the benchmark cannot run here
        shown = sqlalchemy.engine.make_url(server).render_as_string(hide_password=True)
        return f"PostgreSQL at {shown} unreachable ({str(exc).strip().splitlines()[0]})"
    return None


def run_workers(count: int, spec: Path, url: str, cache: Path, until: int) -> dict:
    """Start `count` workers at once; return wall time, trainings and the search phase's throughput."""
    from nets import ScoreCache

    command = [sys.executable, "-m", "dse.cli", "worker", str(spec), "--storage", url, "--until", str(until),
               "--cache-dir", str(cache), "--jobs", "1", "--heartbeat", "2", "--no-progress"]
    start = time.perf_counter()
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(count)]
    ends: dict[int, float] = {}
    while len(ends) < count:
        for index, worker in enumerate(workers):
            if index not in ends and worker.poll() is not None:
                ends[index] = time.perf_counter()
        time.sleep(0.05)
    outputs = [worker.stdout.read() for worker in workers]  # type: ignore[union-attr]
    failed = [(w.returncode, text[-2000:]) for w, text in zip(workers, outputs) if w.returncode != 0]
    if failed:
        raise SystemExit(f"a worker failed (exit {failed[0][0]}):\n{failed[0][1]}")
    done = [DONE.search(text) for text in outputs]
    assert all(done), outputs
    trials = sum(int(match.group(1)) for match in done)  # type: ignore[union-attr]
    search_start = min(ends[i] - float(match.group(2)) for i, match in enumerate(done))  # type: ignore[union-attr]
    variants = max(int(TO_TRAIN.search(text).group(1)) for text in outputs)  # type: ignore[union-attr]
    builds = ScoreCache(cache).builds()
    return {"wall_s": max(ends.values()) - start, "trials": trials, "variants": variants,
            "trainings": sum(line["stored"] == "weights" for line in builds),
            "scorings": sum(line["stored"] == "scores" for line in builds),
            "search_s": max(ends.values()) - search_start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60, help="Completed trials the study must hold (N)")
    parser.add_argument("--workers", default="1,2,4", help="Worker counts K, comma-separated")
    parser.add_argument("--postgres", default=os.environ.get("DSE_TEST_POSTGRES_URL"), help="PostgreSQL URL")
    args = parser.parse_args()
    reason = skip_reason(args.postgres)
    if reason:
        print(json.dumps({"benchmark": "scale_out", "skipped": reason}))
        return
    counts = [int(k) for k in args.workers.split(",")]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "scale-out.toml"
        spec.write_text(SPEC)
        for count in counts:
            with new_database(args.postgres) as url:
                row = run_workers(count, spec, url, Path(tmp) / f"cache-{count}", args.trials)
            rows[count] = row
            print(f"K={count}: {row['trials']} trials in {row['wall_s']:.1f} s, {row['trainings']} trainings for "
                  f"{row['variants']} variants, search {row['trials'] / row['search_s']:.1f} trials/s", flush=True)
    print(json.dumps({
        "benchmark": "scale_out", "trials": args.trials, "variants": rows[counts[0]]["variants"],
        "trainings_per_variant": {str(k): round(r["trainings"] / r["variants"], 3) for k, r in rows.items()},
        "scorings_per_variant": {str(k): round(r["scorings"] / r["variants"], 3) for k, r in rows.items()},
        "wall_s": {str(k): round(r["wall_s"], 2) for k, r in rows.items()},
        "search_trials_per_s": {str(k): round(r["trials"] / r["search_s"], 2) for k, r in rows.items()},
        "load_avg_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
